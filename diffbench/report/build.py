"""Build a report folder from results files: report.csv, report.md, index.html."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from diffbench import results
from diffbench.errors import ResultsError
from diffbench.published import all_published
from diffbench.report.table import tidy
from diffbench.report.writers import html_page, markdown, write_csv


@dataclass(frozen=True)
class ReportFiles:
    """What `build_report` wrote."""

    csv: Path
    markdown: Path
    html: Path
    rows: int


def collect(paths: list[Path]) -> list[Path]:
    """Results files from files and folders (a folder contributes every results*.json in it)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.json")
                            if p.name == "results.json" or p.parent.name == "results")
        else:
            found.append(path)
    if not found:
        raise ResultsError(f"no results files found in {', '.join(str(p) for p in paths)}")
    return found


def build_report(paths: list[Path], out_dir: Path, published: bool = True,
                 title: str = "diffbench report") -> ReportFiles:
    """Read and validate results, add published rows, write CSV, Markdown and HTML."""
    records = [results.read(p) for p in collect(paths)]
    frame = tidy(records, all_published() if published else ())
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = write_csv(frame, out_dir / "report.csv")
    md = out_dir / "report.md"
    md.write_text(f"# {title}\n\n" + markdown(frame), encoding="utf-8")
    page = out_dir / "index.html"
    page.write_text(html_page(frame, title), encoding="utf-8")
    return ReportFiles(csv, md, page, len(frame))
