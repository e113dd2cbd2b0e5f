"""The self-contained HTML report: leaderboards, Pareto plots and sample galleries on one page.

Inline CSS and JS, images as data URIs: no CDN, no external file, works offline. Everything that
came from a user or a dataset (model names, arguments, prompts, citations, paths) is escaped.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from diffbench.report.gallery import Gallery
from diffbench.report.table import args_text, groups, wide
from diffbench.report.writers import Column, cell_text, columns, num, row_label

e = html.escape


@dataclass(frozen=True)
class ParetoFigure:
    """A Pareto plot of one task: where its PNG and SVG are."""

    suite: str
    task: str
    protocol: str
    title: str
    png: Path
    svg: Path


def _th(col: Column) -> str:
    better = {True: "high", False: "low", None: ""}[col.higher_is_better]
    return f'<th data-sort="num" data-better="{better}" scope="col">{e(col.header)}</th>'


def _model_cell(row: dict) -> str:
    out = e(row_label(row))
    if row["model_args"]:
        out += (f' <span class="args" title="{e(row["model_args"])}">'
                f'{e(args_text(row["model_args"]) or "args")}</span>')
    if row["origin"] == "published":
        cite = e(row["source"])
        if re.match(r"https?://", row["url"] or ""):
            cite = f'<a href="{e(row["url"])}" rel="noreferrer">{cite}</a>'
        out += f' <span class="cite">[{cite}]</span>'
        if row["unverified"]:
            out += ' <span class="unverified">unverified</span>'
    return out


def leaderboard(part: pd.DataFrame) -> str:
    """One sortable table (one suite, protocol and task)."""
    metrics, rows = wide(part)
    cols = columns(part, metrics)
    body = []
    for row in rows:
        cells = []
        for c in cols:
            cell = row.get(c.metric) or {}
            value = cell.get("value")
            data = repr(float(value)) if num(value) else ""
            cells.append(f'<td data-value="{data}">{e(cell_text(c, cell))}</td>')
        n = str(int(row["n"])) if num(row["n"]) else ""
        body.append(f'<tr class="{e(row["origin"])}"><td>{_model_cell(row)}</td>{"".join(cells)}'
                    f'<td data-value="{n}">{n}</td><td>{e(row["origin"])}</td></tr>')
    head = "".join(_th(c) for c in cols)
    return (f'<table class="board"><thead><tr><th data-sort="text" scope="col">model</th>{head}'
            f'<th data-sort="num" scope="col">n</th><th data-sort="text" scope="col">origin</th>'
            f'</tr></thead><tbody>{"".join(body)}</tbody></table>')


def _figure(fig: ParetoFigure) -> str:
    data = base64.b64encode(fig.png.read_bytes()).decode("ascii")
    return (f'<figure class="pareto"><img src="data:image/png;base64,{data}" '
            f'alt="{e(fig.title)}"><figcaption>{e(fig.title)} · protocol '
            f'<code>{e(fig.protocol)}</code> · <a href="{e(fig.svg.parent.name)}/'
            f'{e(fig.svg.name)}">SVG</a></figcaption></figure>')


def gallery_html(g: Gallery) -> str:
    """A gallery table: one row per sample key, one column per input or run."""
    head = "".join(f'<th scope="col">{e(c)}</th>' for c in g.columns)
    rows = []
    for key, text, cells in g.rows:
        imgs = "".join(f'<td><img src="{uri}" alt="{e(col)}"></td>' if uri else
                       '<td class="missing">—</td>' for col, uri in zip(g.columns, cells, strict=True))
        rows.append(f'<tr><th scope="row"><code>{e(key)}</code><br>'
                    f'<span class="caption">{e(text)}</span></th>{imgs}</tr>')
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in g.notes)
    table = (f'<table class="gallery"><thead><tr><th scope="col">sample</th>{head}</tr></thead>'
             f'<tbody>{"".join(rows)}</tbody></table>') if rows else ""
    return f'<div class="gallery-wrap">{table}{notes}</div>'


def _task_section(suite: str, task: str, tables: list[tuple[str, pd.DataFrame]],
                  figures: list[ParetoFigure], gallery: Gallery | None, anchor: str) -> str:
    parts = [f'<section id="{e(anchor)}"><h2>{e(suite)} · {e(task)}</h2>']
    for protocol, part in tables:
        parts.append(f'<h3>protocol <code>{e(protocol)}</code></h3>{leaderboard(part)}')
    if figures:
        parts.append("<h3>Pareto fronts</h3>" + "".join(_figure(f) for f in figures))
    if gallery is not None and (gallery.rows or gallery.notes):
        parts.append(f"<h3>Samples</h3>{gallery_html(gallery)}")
    return "".join(parts) + "</section>"


def page(frame: pd.DataFrame, figures: list[ParetoFigure],
         galleries: dict[tuple[str, str], Gallery], title: str = "diffbench report") -> str:
    """The whole page: one section per (suite, task), each with its per-protocol leaderboards."""
    assets = resources.files("diffbench.report")
    css = assets.joinpath("report.css").read_text("utf-8")
    js = assets.joinpath("report.js").read_text("utf-8")
    tables: dict[tuple[str, str], list[tuple[str, pd.DataFrame]]] = {}
    for (suite, protocol, task), part in groups(frame):
        tables.setdefault((suite, task), []).append((protocol, part))
    keys = sorted(set(tables) | {(f.suite, f.task) for f in figures} | set(galleries))
    nav, sections = [], []
    for i, (suite, task) in enumerate(keys):
        anchor = f"t{i}"
        nav.append(f'<li><a href="#{anchor}">{e(suite)} · {e(task)}</a></li>')
        sections.append(_task_section(suite, task, tables.get((suite, task), []),
                                      [f for f in figures if (f.suite, f.task) == (suite, task)],
                                      galleries.get((suite, task)), anchor))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title><style>{css}</style></head><body>"
            f"<h1>{e(title)}</h1>"
            f'<p class="legend">↑ higher is better, ↓ lower is better; ×1000 in a header: values '
            f"shown multiplied. Values ± half the confidence interval (or ± std). Published rows "
            f"carry their citation. Tables never mix protocols. Click a column header to sort "
            f'(best first).</p><nav><ul>{"".join(nav)}</ul></nav>{"".join(sections)}'
            f"<script>{js}</script></body></html>")
