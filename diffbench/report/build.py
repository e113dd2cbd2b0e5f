"""Build a report folder from results files: report.csv, report.md, index.html, pareto/*.png|svg."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from diffbench import __version__, results
from diffbench.comparability import weights_used
from diffbench.display import label as metric_label
from diffbench.published import PublishedFile, all_published, load_published
from diffbench.report.collect import collect
from diffbench.report.gallery import Gallery, Run, says_paired, task_gallery
from diffbench.report.html import About, ParetoFigure, page
from diffbench.report.memorization import memorization_gallery, pairs_of
from diffbench.report.plots import plot_fronts
from diffbench.report.table import (
    heading,
    model_name,
    numbered,
    place,
    short_labels,
    sweep_text,
    tidy,
)
from diffbench.report.writers import markdown, md_text, protocol_extractor, write_csv


@dataclass(frozen=True)
class ReportFiles:
    """What `build_report` wrote."""

    csv: Path
    markdown: Path
    html: Path
    rows: int
    plots: list[Path]


def pareto_figures(records: list[dict[str, Any]], out_dir: Path) -> list[ParetoFigure]:
    """One plot per (suite, protocol, task, axes, parameter): the fronts of every model."""
    groups: dict[tuple[str, ...], dict[tuple[str, str], dict[str, Any]]] = {}
    for rec in records:
        pareto = rec.get("pareto")
        if not isinstance(pareto, dict) or not pareto.get("points"):
            continue
        suite, task = place(rec)
        key = (suite, rec["protocol"]["name"], task, pareto["x"], pareto["y"], pareto["param"])
        # Every record of one sweep carries the same front: keep one per model and arguments.
        groups.setdefault(key, {})[model_name(rec)] = pareto
    figures = []
    for i, (key, fronts) in enumerate(sorted(groups.items())):
        suite, protocol, task, x, y, param = key
        labelled = dict(zip(short_labels(list(fronts)), fronts.values(), strict=True))
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{suite}-{task}-{param}")[:80]
        png, svg = (out_dir / "pareto" / f"{i:02d}-{slug}.{ext}" for ext in ("png", "svg"))
        ex = protocol_extractor(protocol)
        title = (f"{heading(suite, task)}: {metric_label(y, ex)} vs {metric_label(x, ex)} "
                 f"over {param}")
        plot_fronts(labelled, png, svg, title)
        figures.append(ParetoFigure(suite, task, protocol, title, png, svg))
    return figures


def _paired(record: dict[str, Any]) -> bool:
    dataset = record.get("dataset") or {}
    return says_paired(dataset) or says_paired(dataset.get("args"))


def _sample_folder(record: dict[str, Any], results_file: Path) -> Path | None:
    """The run's sample folder; when the run folder moved, its copy beside the results file."""
    fake = (record.get("inputs") or {}).get("fake") or {}
    if not isinstance(fake.get("path"), str):
        return None
    path = Path(fake["path"])
    run_dir = results_file.parent.parent if results_file.parent.name == "results" \
        else results_file.parent
    candidates = [path, run_dir / path, run_dir / "samples" / path.name]
    return next((p for p in candidates if p.exists()), path)


def galleries(pairs: list[tuple[Path, dict[str, Any]]]) -> dict[tuple[str, str], Gallery]:
    """One gallery per (suite, task) over the runs' sample folders (each folder once)."""
    found: dict[tuple[str, str], dict[Path, dict[str, Any]]] = {}
    for file, rec in pairs:
        folder = _sample_folder(rec, file)
        if folder is not None:
            key = place(rec)
            found.setdefault(key, {}).setdefault(folder.resolve(), {"rec": rec, "folder": folder})
    out = {}
    for key, runs in found.items():
        recs = [r["rec"] for r in runs.values()]
        models = list(dict.fromkeys(model_name(r) for r in recs))
        short = dict(zip(models, short_labels(models), strict=True))
        labels = numbered([short[model_name(r)] + (f" · {sweep_text(r)}" if r.get("sweep") else "")
                           for r in recs])
        out[key] = task_gallery([Run(label, r["folder"], _paired(r["rec"]))
                                 for label, r in zip(labels, runs.values(), strict=True)])
    return out


def memorization_galleries(pairs: list[tuple[Path, dict[str, Any]]]
                           ) -> dict[tuple[str, str], Gallery]:
    """One memorization gallery per (suite, task) whose runs recorded closest pairs (ct)."""
    found: dict[tuple[str, str], list[tuple[str, dict[str, Any], Path | None]]] = {}
    for file, rec in pairs:
        if pairs_of(rec):
            label = model_name(rec)[0] + (f" · {sweep_text(rec)}" if rec.get("sweep") else "")
            found.setdefault(place(rec), []).append((label, rec, _sample_folder(rec, file)))
    made = {key: memorization_gallery(runs) for key, runs in found.items()}
    return {key: gallery for key, gallery in made.items() if gallery is not None}


def published_files(shipped: bool, extra: Iterable[Path] = (),
                    include: list[Path] | None = None) -> list[PublishedFile]:
    """The shipped and include-path published numbers (unless turned off) plus extra files or
    folders."""
    files = all_published(include=include) if shipped else []
    for path in extra:
        files += all_published(path) if path.is_dir() else [load_published(path)]
    return files


def generated_at() -> datetime:
    """When a report is made: now, or ``$SOURCE_DATE_EPOCH`` (seconds, UTC) when set, so that
    the same results give a byte-identical report (reproducible-builds.org convention)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), timezone.utc)
    return datetime.now(timezone.utc)


def about(records: list[dict[str, Any]]) -> About:
    """Version, time and the weights (name, sha256 prefix, verdict) per protocol of a report."""
    weights = {(rec["protocol"]["name"], u.weights, u.sha256[:12] if u.sha256 else "not recorded",
                u.status) for rec in records for u in weights_used(rec)}
    versions = sorted({str(rec.get("diffbench_version")) for rec in records})
    return About(__version__, generated_at().strftime("%Y-%m-%d %H:%M:%S UTC"),
                 tuple(versions), tuple(sorted(weights)))


def markdown_head(title: str, info: About) -> str:
    """The Markdown report's title, version line and weights per protocol."""
    lines = [f"# {md_text(title)}\n", f"{md_text(info.line())}\n"]
    if info.weights:
        lines += ["| protocol | weights | sha256 | status |", "|---|---|---|---|"]
        lines += [f"| {md_text(p)} | {md_text(n)} | {md_text(sha)} | {status} |"
                  for p, n, sha, status in info.weights]
        lines.append("")
    return "\n".join(lines) + "\n"


def build_report(paths: list[Path], out_dir: Path, published: bool = True,
                 title: str = "diffbench report",
                 extra_published: Iterable[Path] = (),
                 include: list[Path] | None = None) -> ReportFiles:
    """Read and validate results, add published rows, write CSV, Markdown, plots and HTML."""
    pairs = [(p, results.read(p)) for p in collect(paths)]
    records = [rec for _, rec in pairs]
    frame = tidy(records, published_files(published, extra_published, include))
    info = about(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = write_csv(frame, out_dir / "report.csv")
    md = out_dir / "report.md"
    md.write_text(markdown_head(title, info) + markdown(frame), encoding="utf-8")
    figures = pareto_figures(records, out_dir)
    html_file = out_dir / "index.html"
    html_file.write_text(page(frame, figures, galleries(pairs), info, title,
                              memorization=memorization_galleries(pairs)), encoding="utf-8")
    plots = [p for f in figures for p in (f.png, f.svg)]
    return ReportFiles(csv, md, html_file, len(frame), plots)
