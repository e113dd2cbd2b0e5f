"""The tidy table behind every report: one row per suite × task × model × metric.

Rows of different protocols are kept apart by the writers: a table is always one
(suite, protocol, task).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pandas as pd

from diffbench.display import METRICS as DISPLAY_ORDER
from diffbench.published import PublishedFile

COLUMNS = ["suite", "suite_version", "task", "protocol", "model", "model_args", "metric",
           "value", "std", "ci_low", "ci_high", "n", "fingerprint", "run_id", "origin", "source",
           "unverified"]


def _model_name(record: dict[str, Any]) -> tuple[str, str]:
    model = record.get("model") or {}
    args = json.dumps(model.get("args") or {}, sort_keys=True) if model.get("args") else ""
    return model.get("name") or record.get("run_id", "?"), args


def record_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Tidy rows of one results record."""
    suite = record.get("suite") or {}
    name, args = _model_name(record)
    counts = record.get("counts") or {}
    n = counts.get("scored") or counts.get("fake") or counts.get("generated")
    rows = []
    for metric, m in record["metrics"].items():
        ci = m.get("ci") or {}
        rows.append({
            "suite": suite.get("name", "(score)"), "suite_version": suite.get("version"),
            "task": record.get("task") or "(score)", "protocol": record["protocol"]["name"],
            "model": name, "model_args": args, "metric": metric, "value": m["value"],
            "std": m.get("std"), "ci_low": ci.get("low"), "ci_high": ci.get("high"), "n": n,
            "fingerprint": m.get("extractor"), "run_id": record["run_id"],
            "origin": "smoke" if record.get("smoke") else "measured", "source": "",
            "unverified": False})
    return rows


def published_rows(files: Iterable[PublishedFile]) -> list[dict[str, Any]]:
    """Tidy rows of published numbers."""
    rows = []
    for pub in files:
        for e in pub.entries:
            for metric, value in e.metrics.items():
                rows.append({
                    "suite": pub.suite, "suite_version": None, "task": e.task,
                    "protocol": pub.protocol, "model": e.model, "model_args": "",
                    "metric": metric, "value": value, "std": None, "ci_low": None,
                    "ci_high": None, "n": None, "fingerprint": None, "run_id": e.key,
                    "origin": "published", "source": e.source, "unverified": e.unverified})
    return rows


def tidy(records: Iterable[dict[str, Any]], published: Iterable[PublishedFile] = ()) -> pd.DataFrame:
    """Measured rows plus the published rows of the same suite, protocol and task."""
    rows = [r for rec in records for r in record_rows(rec)]
    measured = {(r["suite"], r["protocol"], r["task"]) for r in rows}
    rows += [r for r in published_rows(published)
             if (r["suite"], r["protocol"], r["task"]) in measured]
    return pd.DataFrame(rows, columns=COLUMNS)


def groups(frame: pd.DataFrame) -> list[tuple[tuple[str, str, str], pd.DataFrame]]:
    """(suite, protocol, task) groups, each one table; never mixing protocols."""
    out = []
    for key, part in frame.groupby(["suite", "protocol", "task"], sort=True, dropna=False):
        out.append((tuple(str(k) for k in key), part))
    return out


def wide(part: pd.DataFrame) -> tuple[list[str], list[dict[str, Any]]]:
    """One group as (metric names, rows of {model, origin, source, metric: cell dict})."""
    order = {name: i for i, name in enumerate(DISPLAY_ORDER)}
    metrics = sorted(dict.fromkeys(part["metric"]), key=lambda m: (order.get(m, len(order)), m))
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in part.to_dict("records"):
        key = (r["model"], r["model_args"], r["run_id"])
        row = rows.setdefault(key, {"model": r["model"], "model_args": r["model_args"],
                                    "origin": r["origin"], "source": r["source"],
                                    "unverified": r["unverified"], "n": r["n"]})
        row[r["metric"]] = r
    return metrics, list(rows.values())
