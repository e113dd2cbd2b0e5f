"""CSV and Markdown writers of the tidy table, and the column formatting they share with HTML."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from diffbench.display import arrow, decimals_at, label, num, scale_suffix, value_text
from diffbench.report.table import INTEGER_COLUMNS, args_text, groups, heading, wide


@dataclass(frozen=True)
class Column:
    """One metric column of a leaderboard: header parts, direction, display scale, digits."""

    metric: str
    label: str
    higher_is_better: bool | None
    scale: float
    decimals: int

    @property
    def header(self) -> str:
        """`KID ×1000 ↓`: label, scale when not 1, direction arrow when known."""
        better = "" if self.higher_is_better is None else arrow(self.higher_is_better)
        return " ".join(p for p in (self.label, scale_suffix(self.scale), better) if p)


def protocol_extractor(name: str) -> str | None:
    """The extractor of a protocol's distribution metrics (None when not installed here)."""
    from diffbench.errors import DiffbenchError
    from diffbench.protocols import get_protocol

    try:
        return get_protocol(name).extractor
    except DiffbenchError:
        return None


def columns(part: pd.DataFrame, metrics: list[str]) -> list[Column]:
    """The columns of one (suite, protocol, task) table; labels name the protocol's features
    where they are not the metric's own ("FD (digits)")."""
    extractor = protocol_extractor(str(part["protocol"].iloc[0])) if len(part) else None
    out = []
    for metric in metrics:
        rows = part[part["metric"] == metric]
        scale = float(rows["scale"].iloc[0]) if num(rows["scale"].iloc[0]) else 1.0
        known = [bool(h) for h in rows["higher_is_better"] if h is not None and not pd.isna(h)]
        out.append(Column(metric, label(metric, extractor), known[0] if known else None, scale,
                          decimals_at(metric, scale)))
    return out


def cell_text(col: Column, cell: dict[str, Any] | None) -> str:
    """`value ± half-CI` (or ± std) at the column's scale and decimals."""
    if not cell or not num(cell.get("value")):
        return "—"
    ci = (cell["ci_low"], cell["ci_high"]) if num(cell.get("ci_low")) and \
        num(cell.get("ci_high")) else None
    std = cell["std"] if num(cell.get("std")) else None
    return value_text(cell["value"], col.decimals, col.scale, ci, std)


MARK = "†"  # a value not comparable to published numbers in an otherwise comparable row


def marked(row: dict[str, Any], cell: dict[str, Any] | None) -> bool:
    """A cell whose own reasons keep it from the published numbers its row stands beside."""
    return bool(row.get("comparable", True) and cell and not cell.get("comparable", True))


def marked_notes(cols: list[Column], rows: list[dict[str, Any]]) -> list[str]:
    """`† model · metric: why` for each marked cell of `rows`."""
    return [f"{MARK} {row_label(row)} · {c.header}: {row[c.metric]['reason']}"
            for row in rows for c in cols if marked(row, row.get(c.metric))]


def row_label(row: dict[str, Any]) -> str:
    """The model as shown in a table: name, then the sweep point when there is one."""
    return row["model"] + (f" · {row['sweep']}" if row.get("sweep") else "")


def origin_text(row: dict[str, Any]) -> str:
    """measured / smoke / published (unverified): citation."""
    text = row["origin"] + (" (unverified)" if row["unverified"] else "")
    return text + (f": {row['source']}" if row["source"] else "")


def ranked_and_apart(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows that may stand beside published numbers (published and comparable measured ones),
    and the measured rows that may not."""
    ranked = [r for r in rows if r.get("comparable", True)]
    return ranked, [r for r in rows if not r.get("comparable", True)]


# Spreadsheets run a cell starting with these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text cell made inert for spreadsheets (a leading `'`); numbers pass unchanged."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """The tidy CSV (RFC 4180), text cells neutralised for spreadsheets."""
    safe = frame.copy()
    for col in INTEGER_COLUMNS:  # a column with empty cells is float in pandas: 500 -> "500.0"
        safe[col] = pd.array([None if pd.isna(v) else int(v) for v in safe[col]], dtype="Int64")
    for col in safe.columns:
        if safe[col].dtype == object or pd.api.types.is_string_dtype(safe[col]):
            safe[col] = safe[col].map(csv_cell)
    # CRLF rows: the csv module then quotes any cell holding a lone CR or LF, which a "\n"
    # terminator would leave bare (a CR in a name would otherwise split the row).
    safe.to_csv(path, index=False, lineterminator="\r\n")
    return path


_MD_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "`": "\\`", "[": "\\[", "]": "\\]",
                             "&": "&amp;", "<": "&lt;", ">": "&gt;", "\n": " ", "\r": " "})


def md_text(text: str) -> str:
    """Text safe in a Markdown table cell or heading: no table break, no HTML, no link."""
    return str(text).translate(_MD_ESCAPES)


def _md_table(cols: list[Column], rows: list[dict[str, Any]], reason: bool = False) -> list[str]:
    extra = " why not comparable |" if reason else ""
    out = ["| model | " + " | ".join(c.header for c in cols) + " | n | origin |" + extra,
           "|---" + "|--:" * len(cols) + "|--:|---|" + ("---|" if reason else "")]
    for row in rows:
        n = str(int(row["n"])) if num(row["n"]) else ""
        cells = " | ".join(cell_text(c, row.get(c.metric))
                           + (f" {MARK}" if marked(row, row.get(c.metric)) else "") for c in cols)
        args = args_text(row["model_args"])
        model = row_label(row) + (f" ({args})" if args else "")
        why = f" {md_text(row.get('reason') or '')} |" if reason else ""
        out.append(f"| {md_text(model)} | {cells} | {n} | {md_text(origin_text(row))} |{why}")
    return out


def markdown(frame: pd.DataFrame) -> str:
    """One Markdown table per (suite, protocol, task); rows that are not comparable to
    published numbers follow in a table of their own, with the reason."""
    out = []
    for (suite, protocol, task), part in groups(frame):
        metrics, rows = wide(part)
        cols = columns(part, metrics)
        ranked, apart = ranked_and_apart(rows)
        code = f"`{protocol}`" if "`" not in protocol else md_text(protocol)
        out.append(f"### {md_text(heading(suite, task))} · protocol {code}\n")
        notes = [md_text(n) + "  " for n in marked_notes(cols, ranked)]
        if ranked:
            out += _md_table(cols, ranked) + [""] + notes + ([""] if notes else [])
        if apart:
            out.append("Not comparable to published numbers (not ranked with them):\n")
            out += _md_table(cols, apart, reason=True) + [""]
    return "\n".join(out)
