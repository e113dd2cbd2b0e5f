"""CSV, Markdown and HTML writers of the tidy table."""

from __future__ import annotations

import html
import math
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from diffbench.display import arrow, display
from diffbench.report.table import groups, wide


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x))


def cell_text(metric: str, cell: dict[str, Any] | None) -> str:
    """`value ± half-CI` (or ± std) with the metric's decimals."""
    if not cell or not _num(cell.get("value")):
        return "—"
    info = display(metric)
    d = info.decimals if info else 4
    text = f"{cell['value']:.{d}f}"
    if _num(cell.get("ci_low")) and _num(cell.get("ci_high")):
        text += f" ± {(cell['ci_high'] - cell['ci_low']) / 2:.{d}f}"
    elif _num(cell.get("std")):
        text += f" ± {cell['std']:.{d}f}"
    return text


def _header(metric: str, part: pd.DataFrame) -> str:
    info = display(metric)
    return f"{info.label} {arrow(info.higher_is_better)}" if info else metric


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """The tidy CSV."""
    frame.to_csv(path, index=False)
    return path


def markdown(frame: pd.DataFrame) -> str:
    """One Markdown table per (suite, protocol, task)."""
    out = []
    for (suite, protocol, task), part in groups(frame):
        metrics, rows = wide(part)
        out.append(f"### {suite} · {task} · protocol `{protocol}`\n")
        out.append("| model | " + " | ".join(_header(m, part) for m in metrics) + " | n | origin |")
        out.append("|---" * (len(metrics) + 3) + "|")
        for row in rows:
            origin = row["origin"] + (" (unverified)" if row["unverified"] else "")
            if row["source"]:
                origin += f": {row['source']}"
            name = row["model"].replace("|", "\\|")
            n = "" if not _num(row["n"]) else str(int(row["n"]))
            cells = " | ".join(cell_text(m, row.get(m)) for m in metrics)
            out.append(f"| {name} | {cells} | {n} | {origin.replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


def _html_table(part: pd.DataFrame) -> str:
    metrics, rows = wide(part)
    e = html.escape
    head = "".join(f'<th data-sort="num">{e(_header(m, part))}</th>' for m in metrics)
    body = []
    for row in rows:
        cls = row["origin"]
        title = e(row["source"]) if row["source"] else ""
        model = e(row["model"]) + (f' <span class="args">{e(row["model_args"])}</span>'
                                    if row["model_args"] else "")
        if row["origin"] == "published":
            model += f' <span class="cite" title="{title}">[{e(row["source"])}]</span>'
            if row["unverified"]:
                model += ' <span class="unverified">unverified</span>'
        cells = "".join(
            f'<td data-value="{(row.get(m) or {}).get("value", "")}">{e(cell_text(m, row.get(m)))}</td>'
            for m in metrics)
        body.append(f'<tr class="{e(cls)}"><td>{model}</td>{cells}<td>{e(cls)}</td></tr>')
    return (f'<table class="board"><thead><tr><th data-sort="text">model</th>{head}'
            f'<th data-sort="text">origin</th></tr></thead><tbody>{"".join(body)}</tbody></table>')


def html_page(frame: pd.DataFrame, title: str = "diffbench report") -> str:
    """One self-contained HTML page (inline CSS and JS, no CDN): a leaderboard per table."""
    assets = resources.files("diffbench.report")
    css = assets.joinpath("report.css").read_text("utf-8")
    js = assets.joinpath("report.js").read_text("utf-8")
    sections = []
    for (suite, protocol, task), part in groups(frame):
        sections.append(f"<section><h2>{html.escape(suite)} · {html.escape(task)}</h2>"
                        f'<p class="protocol">protocol: <code>{html.escape(protocol)}</code></p>'
                        f"{_html_table(part)}</section>")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{css}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            f'<p class="legend">↑ higher is better, ↓ lower is better. Values ± half the '
            f"confidence interval (or ± std). Published rows carry their citation. Click a column "
            f"header to sort.</p>{''.join(sections)}<script>{js}</script></body></html>")
