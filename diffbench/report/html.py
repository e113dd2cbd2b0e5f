"""The self-contained HTML report: leaderboards, Pareto plots and sample galleries on one page.

Inline CSS and JS, images as data URIs: no CDN, no external file, works offline. Everything that
came from a user or a dataset (model names, arguments, prompts, citations, paths) is escaped. The
header states the diffbench version, the time and the weights per protocol; rows not comparable
to published numbers get a table of their own, unsorted, with the reason.
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
from diffbench.report.table import args_text, groups, heading, wide
from diffbench.report.writers import (
    MARK,
    Column,
    cell_text,
    columns,
    marked,
    marked_notes,
    num,
    ranked_and_apart,
    row_label,
)

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


@dataclass(frozen=True)
class About:
    """What a report states about itself: diffbench version, when, the weights per protocol."""

    version: str
    generated: str  # ISO 8601, UTC
    record_versions: tuple[str, ...]  # diffbench versions that wrote the results records
    # (protocol, weights name, sha256 prefix, official | not official | unverified)
    weights: tuple[tuple[str, str, str, str], ...]

    def line(self) -> str:
        """`diffbench 0.1.0 · generated … UTC · records from diffbench 0.1.0` (plain text)."""
        made = ", ".join(self.record_versions) or "?"
        return (f"diffbench {self.version} · generated {self.generated} · results recorded by "
                f"diffbench {made}")


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


def _row(row: dict, cols: list[Column], reason: bool) -> str:
    cells = []
    for c in cols:
        cell = row.get(c.metric) or {}
        value = cell.get("value")
        data = repr(float(value)) if num(value) else ""
        mark = marked(row, cell)
        attrs = f' class="marked" title="{e(cell["reason"])}"' if mark else ""
        cells.append(f'<td data-value="{data}"{attrs}>{e(cell_text(c, cell))}'
                     f'{f" {MARK}" if mark else ""}</td>')
    n = str(int(row["n"])) if num(row["n"]) else ""
    why = f'<td class="reason">{e(row.get("reason") or "")}</td>' if reason else ""
    return (f'<tr class="{e(row["origin"])}"><td>{_model_cell(row)}</td>{"".join(cells)}'
            f'<td data-value="{n}">{n}</td><td>{e(row["origin"])}</td>{why}</tr>')


def leaderboard(part: pd.DataFrame) -> str:
    """One sortable table (one suite, protocol and task) of published and comparable rows, then
    the rows that are not comparable in a table of their own, unsorted, with the reason."""
    metrics, rows = wide(part)
    cols = columns(part, metrics)
    ranked, apart = ranked_and_apart(rows)
    out = ""
    if ranked:
        better = {True: "high", False: "low", None: ""}
        head = "".join(f'<th data-sort="num" data-better="{better[c.higher_is_better]}" '
                       f'scope="col">{e(c.header)}</th>' for c in cols)
        out += (f'<table class="board"><thead><tr><th data-sort="text" scope="col">model</th>'
                f'{head}<th data-sort="num" scope="col">n</th><th data-sort="text" '
                f'scope="col">origin</th></tr></thead><tbody>'
                f'{"".join(_row(r, cols, False) for r in ranked)}</tbody></table>')
        notes = marked_notes(cols, ranked)
        if notes:
            out += '<p class="marked-note">' + "<br>".join(e(n) for n in notes) + "</p>"
    if apart:
        head = "".join(f'<th scope="col">{e(c.header)}</th>' for c in cols)
        out += ('<p class="apart-note">Not comparable to published numbers; not ranked with '
                'them:</p><table class="apart"><thead><tr><th scope="col">model</th>'
                f'{head}<th scope="col">n</th><th scope="col">origin</th><th scope="col">why '
                f'not comparable</th></tr></thead><tbody>'
                f'{"".join(_row(r, cols, True) for r in apart)}</tbody></table>')
    return out


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


def about_html(about: About) -> str:
    """The header: version and time, and a table of the weights each protocol's rows used."""
    rows = "".join(f"<tr><td><code>{e(p)}</code></td><td>{e(name)}</td><td><code>{e(sha)}"
                   f'</code></td><td class="w-{e(status.replace(" ", "-"))}">{e(status)}</td></tr>'
                   for p, name, sha, status in about.weights)
    table = ('<table class="weights"><caption>Feature extractor weights per protocol (measured '
             'rows)</caption><thead><tr><th scope="col">protocol</th><th scope="col">weights'
             '</th><th scope="col">sha256</th><th scope="col">status</th></tr></thead>'
             f"<tbody>{rows}</tbody></table>") if rows else ""
    return f'<p class="about">{e(about.line())}</p>{table}'


def _task_section(suite: str, task: str, tables: list[tuple[str, pd.DataFrame]],
                  figures: list[ParetoFigure], gallery: Gallery | None, anchor: str,
                  memorization: Gallery | None = None) -> str:
    parts = [f'<section id="{e(anchor)}"><h2>{e(heading(suite, task))}</h2>']
    for protocol, part in tables:
        parts.append(f'<h3>protocol <code>{e(protocol)}</code></h3>{leaderboard(part)}')
    if figures:
        parts.append("<h3>Pareto fronts</h3>" + "".join(_figure(f) for f in figures))
    if gallery is not None and (gallery.rows or gallery.notes):
        parts.append(f"<h3>Samples</h3>{gallery_html(gallery)}")
    if memorization is not None:
        parts.append("<h3>Memorization: the generated images closest to a training image</h3>"
                     + gallery_html(memorization))
    return "".join(parts) + "</section>"


def page(frame: pd.DataFrame, figures: list[ParetoFigure],
         galleries: dict[tuple[str, str], Gallery], about: About,
         title: str = "diffbench report",
         memorization: dict[tuple[str, str], Gallery] | None = None) -> str:
    """The whole page: one section per (suite, task), each with its per-protocol leaderboards."""
    assets = resources.files("diffbench.report")
    css, js = (assets.joinpath(f"report.{kind}").read_text("utf-8") for kind in ("css", "js"))
    tables: dict[tuple[str, str], list[tuple[str, pd.DataFrame]]] = {}
    for (suite, protocol, task), part in groups(frame):
        tables.setdefault((suite, task), []).append((protocol, part))
    memorization = memorization or {}
    keys = sorted(set(tables) | {(f.suite, f.task) for f in figures} | set(galleries)
                  | set(memorization))
    nav, sections = [], []
    for i, (suite, task) in enumerate(keys):
        anchor = f"t{i}"
        nav.append(f'<li><a href="#{anchor}">{e(heading(suite, task))}</a></li>')
        sections.append(_task_section(suite, task, tables.get((suite, task), []),
                                      [f for f in figures if (f.suite, f.task) == (suite, task)],
                                      galleries.get((suite, task)), anchor,
                                      memorization.get((suite, task))))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title><style>{css}</style></head><body>"
            f"<h1>{e(title)}</h1>{about_html(about)}"
            f'<p class="legend">↑ higher is better, ↓ lower is better; ×1000 in a header: values '
            f"shown multiplied. Values ± half the confidence interval (or ± std). Published rows "
            f"carry their citation. Tables never mix protocols. Rows not comparable to published "
            f"numbers (unofficial weights, smoke runs, fewer images than the task asks, changed "
            f"protocol settings, biased estimates) are listed apart with the reason, never ranked "
            f"with them. Click a column header to sort (best first).</p>"
            f'<nav><ul>{"".join(nav)}</ul></nav>{"".join(sections)}'
            f"<script>{js}</script></body></html>")
