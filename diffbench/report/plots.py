"""Pareto plots: the fronts of several models over a sweep, on one figure (PNG and SVG).

Each model gets a colour and a marker; its front is a step line through the non-dominated points
(the boundary of the region they dominate), dominated points are grey, and every point is labelled
with its parameter value. Axis labels say which way is better, and an arrow above the corner points
to the better region (the HAL / DeepCAVE convention, harness note §5).

Matplotlib is driven without pyplot (a bare `Figure` renders with Agg), so no global backend or
figure state is touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from diffbench.display import label as metric_label

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
GREY = "#b0b0b0"


def plain(text: str) -> str:
    """Text shown literally by matplotlib: `$` would otherwise start mathtext."""
    return str(text).replace("\\", "\\\\").replace("$", r"\$")


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def step_path(front: Sequence[tuple[float, float]], x_higher: bool,
              y_higher: bool) -> list[tuple[float, float]]:
    """Vertices of the staircase through front points: each corner is worse on both axes."""
    pts = sorted(front)
    path = pts[:1]
    for (ax, ay), (bx, by) in zip(pts, pts[1:], strict=False):
        corner_x = min(ax, bx) if x_higher else max(ax, bx)
        corner_y = min(ay, by) if y_higher else max(ay, by)
        path += [(corner_x, corner_y), (bx, by)]
    return path


def _axis_text(metric: str, higher: bool, axis: str) -> str:
    better = {("x", True): "higher is better →", ("x", False): "← lower is better",
              ("y", True): "higher is better ↑", ("y", False): "lower is better ↓"}
    return f"{plain(metric_label(metric))} ({better[(axis, higher)]})"


def _draw_front(ax: Any, i: int, model: str, pareto: Mapping[str, Any]) -> None:
    colour, marker = COLOURS[i % len(COLOURS)], MARKERS[i % len(MARKERS)]
    points = pareto["points"]
    front = [(p["x"], p["y"]) for p in points if p["on_front"]]
    path = step_path(front, pareto.get("x_higher", True), pareto.get("y_higher", True))
    line, = ax.plot([p[0] for p in path], [p[1] for p in path], color=colour, linewidth=1.6,
                    label=plain(model if len(model) <= 48 else model[:47] + "…"), zorder=2)
    line.set_gid(f"pareto-front-{i}")
    on = [p for p in points if p["on_front"]]
    off = [p for p in points if not p["on_front"]]
    ax.scatter([p["x"] for p in on], [p["y"] for p in on], color=colour, marker=marker, s=36,
               zorder=3, gid=f"pareto-front-points-{i}")
    if off:
        ax.scatter([p["x"] for p in off], [p["y"] for p in off], facecolor=GREY, marker=marker,
                   edgecolor=colour, linewidth=0.6, s=30, zorder=2,
                   gid=f"pareto-dominated-{i}")
    # Points that coincide get one label listing their values.
    spots: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for p in points:
        spots.setdefault((p["x"], p["y"]), []).append(p)
    for (x, y), same in spots.items():
        text = ", ".join(_value_text(p["param_value"]) for p in same)
        ax.annotate(plain(text), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7,
                    color=colour if same[0]["on_front"] else "#808080")


def _better_arrow(ax: Any, x_higher: bool, y_higher: bool) -> None:
    # Above the plot's top-right corner, so that it never hides a point.
    glyph = {(True, True): "↗", (False, True): "↖", (True, False): "↘", (False, False): "↙"}
    ax.text(1.0, 1.01, f"better {glyph[(x_higher, y_higher)]}", transform=ax.transAxes,
            ha="right", va="bottom", fontsize=9, color="#555555", gid="pareto-better")


def plot_fronts(fronts: Mapping[str, Mapping[str, Any]], out_png: str | Path,
                out_svg: str | Path, title: str = "") -> tuple[Path, Path]:
    """Draw one Pareto front per model (pareto dicts from `sweep_front`) and save PNG and SVG."""
    if not fronts:
        raise ValueError("plot_fronts needs at least one front")
    first = next(iter(fronts.values()))
    x_higher, y_higher = first.get("x_higher", True), first.get("y_higher", True)
    fig = Figure(figsize=(6.4, 4.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for i, (model, pareto) in enumerate(fronts.items()):
        _draw_front(ax, i, model, pareto)
    ax.set_xlabel(_axis_text(first["x"], x_higher, "x"))
    ax.set_ylabel(_axis_text(first["y"], y_higher, "y"))
    param = plain(first.get("param", ""))
    ax.set_title(plain(title) if title else f"Pareto fronts over {param}", fontsize=10,
                 loc="left")
    ax.grid(True, linewidth=0.4, alpha=0.5)
    ax.margins(0.08)  # room for the value labels at the edges
    ax.legend(fontsize=8, title=f"points labelled with {param}", title_fontsize=7)
    _better_arrow(ax, x_higher, y_higher)
    out_png, out_svg = Path(out_png), Path(out_svg)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    out_svg.parent.mkdir(parents=True, exist_ok=True)
    # Fixed metadata and hash salt: the same fronts give byte-identical files.
    with matplotlib.rc_context({"svg.hashsalt": "diffbench", "svg.fonttype": "path"}):
        fig.savefig(out_png, format="png", metadata={"Software": None})
        fig.savefig(out_svg, format="svg", metadata={"Date": None, "Creator": None})
    return out_png, out_svg
