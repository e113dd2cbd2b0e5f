"""CSV and Markdown writers of the tidy table, and the column formatting they share with HTML."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from diffbench.display import arrow, decimals_at, label, scale_suffix
from diffbench.report.table import args_text, groups, wide


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
        parts = [self.label, scale_suffix(self.scale)]
        if self.higher_is_better is not None:
            parts.append(arrow(self.higher_is_better))
        return " ".join(p for p in parts if p)


def num(x: Any) -> bool:
    """A finite number (not None, not NaN)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def columns(part: pd.DataFrame, metrics: list[str]) -> list[Column]:
    """The columns of one (suite, protocol, task) table."""
    out = []
    for metric in metrics:
        rows = part[part["metric"] == metric]
        scale = float(rows["scale"].iloc[0]) if num(rows["scale"].iloc[0]) else 1.0
        known = [bool(h) for h in rows["higher_is_better"] if h is not None and not pd.isna(h)]
        out.append(Column(metric, label(metric), known[0] if known else None, scale,
                          decimals_at(metric, scale)))
    return out


def cell_text(col: Column, cell: dict[str, Any] | None) -> str:
    """`value ± half-CI` (or ± std) at the column's scale and decimals."""
    if not cell or not num(cell.get("value")):
        return "—"
    s, d = col.scale, col.decimals
    text = f"{cell['value'] * s:.{d}f}"
    if num(cell.get("ci_low")) and num(cell.get("ci_high")):
        text += f" ± {(cell['ci_high'] - cell['ci_low']) * s / 2:.{d}f}"
    elif num(cell.get("std")):
        text += f" ± {cell['std'] * s:.{d}f}"
    return text


def row_label(row: dict[str, Any]) -> str:
    """The model as shown in a table: name, then the sweep point when there is one."""
    return row["model"] + (f" · {row['sweep']}" if row.get("sweep") else "")


def origin_text(row: dict[str, Any]) -> str:
    """measured / smoke / published (unverified): citation."""
    text = row["origin"] + (" (unverified)" if row["unverified"] else "")
    return text + (f": {row['source']}" if row["source"] else "")


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """The tidy CSV."""
    frame.to_csv(path, index=False)
    return path


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(frame: pd.DataFrame) -> str:
    """One Markdown table per (suite, protocol, task)."""
    out = []
    for (suite, protocol, task), part in groups(frame):
        metrics, rows = wide(part)
        cols = columns(part, metrics)
        out.append(f"### {_md(suite)} · {_md(task)} · protocol `{_md(protocol)}`\n")
        out.append("| model | " + " | ".join(c.header for c in cols) + " | n | origin |")
        out.append("|---" + "|--:" * len(cols) + "|--:|---|")
        for row in rows:
            n = str(int(row["n"])) if num(row["n"]) else ""
            cells = " | ".join(cell_text(c, row.get(c.metric)) for c in cols)
            args = args_text(row["model_args"])
            model = row_label(row) + (f" ({args})" if args else "")
            out.append(f"| {_md(model)} | {cells} | {n} | {_md(origin_text(row))} |")
        out.append("")
    return "\n".join(out)
