"""The tidy table behind every report: one row per suite × task × model × metric.

Values are raw everywhere (a published number printed as KID×1000 is divided back). The
``scale`` column is the display scale of the row's report column, one per (suite, protocol, task,
metric), so a measured and a published number in one column are shown alike. Rows of different
protocols are kept apart by the writers: a table is always one (suite, protocol, task).
``comparable`` and ``reason`` carry each measured record's verdict (`diffbench.comparability`);
the writers rank only comparable rows beside published ones. Local paths from a record are
shown as base names.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import PurePath
from typing import Any

import pandas as pd

from diffbench.comparability import comparability
from diffbench.display import higher_is_better, output_order
from diffbench.published import PublishedFile

COLUMNS = ["suite", "suite_version", "task", "protocol", "model", "model_args", "sweep", "metric",
           "higher_is_better", "value", "std", "ci_low", "ci_high", "n", "scale", "fingerprint",
           "run_id", "origin", "source", "url", "unverified", "comparable", "reason"]
INTEGER_COLUMNS = ["suite_version", "n"]  # counts and versions: written as integers, never 500.0
GROUP = ["suite", "protocol", "task"]
SCORE_SUITE = "(score)"  # the suite column of `diffbench score` records: they have no suite


# An absolute or home-relative path inside any text: `/a/b/c.pt`, `~/repo`, `C:\\x\\y`; not URLs.
_PATH = re.compile(r"(?<![\w.~:/\\<-])(?:~|[A-Za-z]:)?[/\\](?:[^\s/\\\"'<>;,()]+[/\\])*"
                   r"([^\s/\\\"'<>;,()]+)")


def hide_paths(value: Any) -> Any:
    """`value` with every absolute local path (in any string, at any depth) replaced by its base
    name: reports are shared, and the machine's folders say nothing about a number."""
    if isinstance(value, str):
        return _PATH.sub(r"\1", value)
    if isinstance(value, dict):
        return {k: hide_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [hide_paths(v) for v in value]
    return value


def model_name(record: dict[str, Any]) -> tuple[str, str]:
    """(model name, its arguments as compact JSON or '', local paths as base names)."""
    model = record.get("model") or {}
    args = json.dumps(hide_paths(model.get("args")), sort_keys=True) if model.get("args") else ""
    if model.get("name"):
        return model["name"], args
    inputs = record.get("inputs") or {}
    if inputs.get("fake"):  # a `diffbench score` record: named by its two sets, not a run id
        return f"{set_name(inputs.get('real'))} vs {set_name(inputs.get('fake'))}", args
    return record.get("run_id", "?"), args


def set_name(describe: Any) -> str:
    """The short name of an image set or statistics file of a `diffbench score` record."""
    if not isinstance(describe, dict):
        return "?"
    path = describe.get("path")
    return PurePath(str(path).replace("\\", "/")).name if path else str(describe.get("kind") or "?")


def place(record: dict[str, Any]) -> tuple[str, str]:
    """(suite, task) a record is filed under; a score record: its two sets, `ref vs samples`."""
    suite = record.get("suite") or {}
    if suite.get("name"):
        return suite["name"], record.get("task") or "(score)"
    inputs = record.get("inputs") or {}
    return SCORE_SUITE, record.get("task") or \
        f"{set_name(inputs.get('real'))} vs {set_name(inputs.get('fake'))}"


def heading(suite: str, task: str) -> str:
    """A table's title: `suite · task`, or just the two sets for score records."""
    return task if suite == SCORE_SUITE else f"{suite} · {task}"


def short_labels(models: list[tuple[str, str]], limit: int = 48) -> list[str]:
    """Unique labels for (name, args JSON) pairs: the name, plus only the arguments that tell
    apart models of one name (``toy (size=24)``; plain values before nested ones), else ``#i``."""
    out = []
    for name, args in models:
        twins = [json.loads(a) if a else {} for n, a in models if n == name]
        label = name
        if len(twins) > 1:
            mine = json.loads(args) if args else {}
            keys = sorted({k for t in twins for k in t if any(t.get(k) != u.get(k) for u in twins)})
            plain = [k for k in keys if not isinstance(mine.get(k), (dict, list))]
            shown = ", ".join(f"{k}={mine.get(k)}" for k in (plain or keys))
            label += f" ({shown})" if shown else ""
        out.append(label if len(label) <= limit else label[:limit - 1] + "…")
    return numbered(out)


def numbered(labels: list[str]) -> list[str]:
    """Labels made unique: ones still alike get ``#1``, ``#2``, …"""
    return [f"{label} #{labels[:i].count(label) + 1}" if labels.count(label) > 1 else label
            for i, label in enumerate(labels)]


def args_text(args: str) -> str:
    """The plain (not nested) model arguments as ``k=v, …`` for a table cell."""
    data = json.loads(args) if args else {}
    return ", ".join(f"{k}={v}" for k, v in data.items() if not isinstance(v, (dict, list)))


def sweep_text(record: dict[str, Any]) -> str:
    """`rg_scale=2` for a sweep point's record, '' otherwise."""
    return ", ".join(f"{k}={v}" for k, v in (record.get("sweep") or {}).items())


def record_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Tidy rows of one results record, each with the record's comparability verdict."""
    suite_name, task = place(record)
    name, args = model_name(record)
    counts = record.get("counts") or {}
    n = counts.get("scored") or counts.get("fake") or counts.get("generated")
    verdict = comparability(record)
    rows = []
    for metric, m in record["metrics"].items():
        ci = m.get("ci") or {}
        rows.append({
            "suite": suite_name, "suite_version": (record.get("suite") or {}).get("version"),
            "task": task, "protocol": record["protocol"]["name"],
            "model": name, "model_args": args, "sweep": sweep_text(record), "metric": metric,
            "value": m["value"], "std": m.get("std"), "ci_low": ci.get("low"),
            "ci_high": ci.get("high"), "n": n, "scale": m.get("scale"),
            "fingerprint": m.get("extractor"), "run_id": record["run_id"],
            "origin": "smoke" if record.get("smoke") else "measured", "source": "", "url": "",
            "unverified": False, "higher_is_better": higher_is_better(metric, m),
            "comparable": not verdict.metric_reasons(metric),
            "reason": hide_paths("; ".join(verdict.metric_reasons(metric)))})
    return rows


def published_rows(files: Iterable[PublishedFile]) -> list[dict[str, Any]]:
    """Tidy rows of published numbers, divided back to raw values."""
    rows = []
    for pub in files:
        for e in pub.entries:
            for metric, printed in e.metrics.items():
                rows.append({
                    "suite": pub.suite, "suite_version": None, "task": e.task,
                    "protocol": pub.protocol, "model": e.model, "model_args": "", "sweep": "",
                    "metric": metric, "value": pub.raw_value(metric, printed), "std": None,
                    "ci_low": None, "ci_high": None, "n": None,
                    "scale": pub.scales.get(metric), "fingerprint": None, "run_id": e.key,
                    "origin": "published", "source": e.source, "url": e.url or "",
                    "unverified": e.unverified, "higher_is_better": higher_is_better(metric),
                    "comparable": True, "reason": ""})
    return rows


def _column_scales(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], float]:
    # Measured scales first (the protocol's choice), then the published file's, then the default.
    found: dict[tuple[str, ...], tuple[Counter, Counter]] = {}
    for r in rows:
        key = (r["suite"], r["protocol"], r["task"], r["metric"])
        measured, published = found.setdefault(key, (Counter(), Counter()))
        if r["scale"]:
            (published if r["origin"] == "published" else measured)[float(r["scale"])] += 1
    out = {}
    for key, (measured, published) in found.items():
        votes = measured or published
        out[key] = votes.most_common(1)[0][0] if votes else 1.0
    return out


def tidy(records: Iterable[dict[str, Any]], published: Iterable[PublishedFile] = ()) -> pd.DataFrame:
    """Measured rows plus the published rows of the same suite, protocol and task."""
    rows = [r for rec in records for r in record_rows(rec)]
    measured = {(r["suite"], r["protocol"], r["task"]) for r in rows}
    rows += [r for r in published_rows(published)
             if (r["suite"], r["protocol"], r["task"]) in measured]
    scales = _column_scales(rows)
    for r in rows:
        r["scale"] = scales[(r["suite"], r["protocol"], r["task"], r["metric"])]
    return pd.DataFrame(rows, columns=COLUMNS)


def groups(frame: pd.DataFrame) -> list[tuple[tuple[str, str, str], pd.DataFrame]]:
    """(suite, protocol, task) groups, each one table; never mixing protocols."""
    return [(tuple(str(k) for k in key), part)
            for key, part in frame.groupby(GROUP, sort=True, dropna=False)]


def wide(part: pd.DataFrame) -> tuple[list[str], list[dict[str, Any]]]:
    """One group as (metric names, rows of {model, origin, source, metric: cell dict})."""
    order = output_order()
    metrics = sorted(dict.fromkeys(part["metric"]), key=lambda m: (order.get(m, len(order)), m))
    rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for r in part.to_dict("records"):
        key = (r["model"], r["model_args"], r["sweep"], r["run_id"])
        row = rows.setdefault(key, {k: r[k] for k in ("model", "model_args", "sweep", "origin",
                                                      "source", "url", "unverified", "n",
                                                      "run_id", "comparable", "reason")})
        row[r["metric"]] = r
    for row in rows.values():
        # A row stands beside published numbers when any of its values may (the others are
        # marked per cell); a record-wide reason makes every cell, so the row, not comparable.
        cells = [row[m] for m in metrics if m in row]
        row["comparable"] = any(c["comparable"] for c in cells)
        row["reason"] = "" if row["comparable"] else next(
            (c["reason"] for c in cells if c["reason"]), "")
    return metrics, list(rows.values())
