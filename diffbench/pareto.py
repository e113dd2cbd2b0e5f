"""Pareto fronts over two metrics: which points of a sweep no other point beats on both axes.

A point *dominates* another when it is at least as good on both axes and strictly better on one
(better follows each axis' direction). The front is the set of points no point dominates. Tie
rules, stated once:

- identical points do not dominate each other, so duplicates on the front are all kept;
- a point that equals another on one axis and is worse on the other is dominated;
- a point with a non-finite coordinate (NaN, ±inf) is never on the front and dominates nothing.

Pure computation: no plotting here (`diffbench.report.plots` draws the fronts).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import groupby
from typing import Any

from diffbench.display import higher_is_better
from diffbench.errors import MetricInputError


def pareto_front(points: Sequence[tuple[float, float]], x_higher: bool = True,
                 y_higher: bool = True) -> list[int]:
    """Indices (ascending) of the non-dominated points; see the module docstring for ties."""
    sx, sy = (1.0 if x_higher else -1.0), (1.0 if y_higher else -1.0)
    finite = [(sx * float(x), sy * float(y), i) for i, (x, y) in enumerate(points)
              if math.isfinite(x) and math.isfinite(y)]
    # Both axes now "higher is better". Sweep from the best x down; within one x only the best y
    # can survive, and it survives when it beats every y seen at a strictly better x.
    finite.sort(key=lambda p: (-p[0], -p[1]))
    front: list[int] = []
    best_y = -math.inf
    for _, group in groupby(finite, key=lambda p: p[0]):
        members = list(group)
        top = members[0][1]
        if top > best_y:
            front += [i for _, y, i in members if y == top]
            best_y = top
    return sorted(front)


def _no_direction(name: str) -> MetricInputError:
    return MetricInputError(f"metric '{name}': no direction known for a Pareto front; record "
                            "'higher_is_better' in its results entry")


def _metric(record: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    entry = (record.get("metrics") or {}).get(name)
    if not isinstance(entry, Mapping) or not isinstance(entry.get("value"), (int, float)):
        have = ", ".join(sorted(record.get("metrics") or {})) or "none"
        raise MetricInputError(f"{where}: metric '{name}' is missing (has: {have}); add it to "
                               "the task's metrics to draw its Pareto front")
    return entry


def sweep_front(records: Iterable[Mapping[str, Any]], x_metric: str, y_metric: str,
                param: str) -> dict[str, Any]:
    """The Pareto points of one task and model over a sweep of `param`, as a JSON-able dict."""
    rows = []
    x_higher = y_higher = None
    for record in records:
        where = f"results {record.get('run_id', '?')}"
        sweep = record.get("sweep") or {}
        if param not in sweep:
            raise MetricInputError(f"{where}: no sweep value for '{param}' (sweep: {dict(sweep)})"
                                   f"; run the task with --sweep {param}=v1,v2,...")
        x, y = _metric(record, x_metric, where), _metric(record, y_metric, where)
        if x_higher is None:  # the first record's directions
            x_higher = higher_is_better(x_metric, x, _no_direction)
            y_higher = higher_is_better(y_metric, y, _no_direction)
        rows.append((sweep[param], float(x["value"]), float(y["value"])))
    if not rows:
        raise MetricInputError(f"no results for the sweep over '{param}': nothing to put on a "
                               "Pareto front")
    values = [v for v, _, _ in rows]
    dupes = sorted({str(v) for v in values if values.count(v) > 1})
    if dupes:
        raise MetricInputError(f"sweep over '{param}': several results for {param}="
                               f"{', '.join(dupes)}; one result per value is needed")
    # Numbers in order first, then the other values by their text.
    rows.sort(key=lambda r: (0, r[0]) if isinstance(r[0], (int, float)) else (1, str(r[0])))
    on_front = set(pareto_front([(x, y) for _, x, y in rows], bool(x_higher), bool(y_higher)))
    return {"x": x_metric, "y": y_metric, "param": param,
            "x_higher": bool(x_higher), "y_higher": bool(y_higher),
            "points": [{"param_value": v, "x": x, "y": y, "on_front": i in on_front}
                       for i, (v, x, y) in enumerate(rows)]}
