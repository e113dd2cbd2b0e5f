"""Regression gate: compare results records with a committed baseline.

A baseline holds, per task (``task``, or ``task@param=value`` for a sweep point; keyed
``model/task`` when it was made from the results of several models, e.g. a run folder with one
run per model), the protocol,
the sample counts and each metric's value, direction, tolerance (absolute and/or relative; the
larger allowance applies) and optionally ``beyond_ci``: a worse value then fails only when the
baseline also lies outside the current confidence interval. Improvements never fail. A
comparison that cannot be made (missing task or metric, other suite version, protocol, extractor
fingerprint or sample count, a smoke run) is "not comparable", never a pass.

Each entry records the model it was made with (``model``; baselines written before that have
none and match a task's only record). A record is gated against the entries of its own model: a
run folder with several models' runs gates each against its own entries, and an entry whose task
was run only by other models is "not comparable: baseline is for MODEL". Tolerances are finite
and non-negative, checked when the baseline is read.

Exit codes: 0 pass, 1 regression, 2 usage error, 3 not comparable.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from diffbench.comparability import comparability
from diffbench.display import higher_is_better, num
from diffbench.errors import ConfigError, shown
from diffbench.yamlio import read_mapping

PASS, REGRESSION, NOT_COMPARABLE = 0, 1, 3
STATUS = {PASS: "pass", REGRESSION: "regression", NOT_COMPARABLE: "not comparable"}
BASELINE_FORMAT = 1


def default_tolerance(name: str) -> dict[str, float]:
    """The metric spec's default tolerance for results key `name` (relative 5% when unknown)."""
    from diffbench.metrics.spec import DEFAULT_TOLERANCE, output_info

    info = output_info(name)
    return dict(info[1].tolerance if info else DEFAULT_TOLERANCE)


@dataclass(frozen=True)
class Row:
    """One metric's verdict."""

    task: str
    metric: str
    baseline: float | None
    current: float | None
    delta: float | None
    tolerance: str
    status: str  # pass | improved | regression | not comparable
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """The gate's answer: rows, problems that make runs incomparable, notes, the exit code."""

    rows: list[Row]
    problems: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 pass, 1 regression, 3 not comparable (which wins over a regression)."""
        if self.problems or any(r.status == "not comparable" for r in self.rows):
            return NOT_COMPARABLE
        return REGRESSION if any(r.status == "regression" for r in self.rows) else PASS

    def to_json(self) -> dict[str, Any]:
        """A machine-readable form of the verdict."""
        return {"status": STATUS[self.exit_code], "exit_code": self.exit_code,
                "problems": self.problems, "notes": self.notes,
                "metrics": [asdict(r) for r in self.rows]}


def model_of(record: dict[str, Any]) -> str:
    """The model name of a record (``score`` for `diffbench score` records)."""
    return (record.get("model") or {}).get("name") or "score"


def task_key(record: dict[str, Any], per_model: bool = False) -> str:
    """The baseline key of a record: its task, plus ``@param=value`` for a sweep point, after
    ``model/`` when `per_model`."""
    key = record.get("task") or "score"
    sweep = record.get("sweep") or {}
    key += "".join(f"@{k}={v}" for k, v in sweep.items())  # as `diffbench run` names points
    return f"{model_of(record)}/{key}" if per_model else key


def gated(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records the gate compares: oracle records (real images scored against each other)
    describe the data, not a model, and are not gated."""
    return [rec for rec in records if rec.get("kind") != "oracle"]


def by_task(records: list[dict[str, Any]], per_model: bool = False) -> dict[str, dict[str, Any]]:
    """Records keyed by `task_key`; two records of one key are a usage error."""
    out: dict[str, dict[str, Any]] = {}
    for rec in gated(records):
        key = task_key(rec, per_model)
        if key in out:
            raise ConfigError(f"two results for task '{key}' (runs {out[key]['run_id']} and "
                              f"{rec['run_id']}); pass one results file per task")
        out[key] = rec
    return out


def _no_direction(name: str) -> ConfigError:
    return ConfigError(f"baseline metric '{name}': no direction known; add "
                       "'higher_is_better: true|false' to its entry")


def _task_baseline(record: dict[str, Any]) -> dict[str, Any]:
    metrics = {name: {"value": m["value"],
                      "higher_is_better": higher_is_better(name, m, _no_direction),
                      "tolerance": default_tolerance(name), "beyond_ci": False,
                      **({"extractor": m["extractor"]} if m.get("extractor") else {})}
               for name, m in record["metrics"].items()}
    return {"model": model_of(record), "protocol": record["protocol"]["name"],
            "counts": {k: v for k, v in record["counts"].items() if v is not None},
            "metrics": metrics}


def init_baseline(records: list[dict[str, Any]] | dict[str, Any],
                  source: str = "") -> dict[str, Any]:
    """A baseline from results records, with default tolerances per metric, for review; keyed
    ``model/task`` when the records come from more than one model."""
    records = [records] if isinstance(records, dict) else records
    per_model = len({model_of(r) for r in gated(records)}) > 1
    suites = {(r["suite"]["name"], r["suite"]["version"]) if r.get("suite") else None
              for r in records}
    if len(suites) > 1:
        raise ConfigError(f"results of several suites or suite versions ({sorted(map(str, suites))}"
                          "); write one baseline per suite")
    suite = next(iter(suites), None)
    return {"diffbench_baseline": BASELINE_FORMAT, "source": source,
            "suite": suite and {"name": suite[0], "version": suite[1]},
            "tasks": {key: _task_baseline(rec)
                      for key, rec in sorted(by_task(records, per_model).items())}}


def _check_metrics(path: Path, task: str, metrics: Any) -> None:
    if not isinstance(metrics, dict) or not metrics:
        raise ConfigError(f"{path}: tasks.{task}: baseline has no metrics")
    for name, spec in metrics.items():
        if not num(spec.get("value") if isinstance(spec, dict) else None):
            raise ConfigError(f"{path}: tasks.{task}.metrics.{name}: needs a finite numeric "
                              "'value'")
        tol = spec.get("tolerance", {})
        where = f"{path}: tasks.{task}.metrics.{name}.tolerance"
        if not isinstance(tol, dict) or set(tol) - {"abs", "rel"}:
            raise ConfigError(f"{where}: expected {{abs: X}} and/or {{rel: X}} with X >= 0")
        for key, v in tol.items():
            if not num(v) or v < 0:
                raise ConfigError(f"{where}.{key}: {shown(v)} is not a finite number >= 0 (an "
                                  "infinite or NaN tolerance would pass any regression); set it, "
                                  "e.g. 0.05")


def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read a baseline file (YAML or JSON) and check its shape."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: baseline not found; write one with "
                          f"`diffbench gate init RESULTS -o {path}`")
    data = read_mapping(path, "the baseline (YAML or JSON)")
    if data.get("diffbench_baseline") != BASELINE_FORMAT:
        raise ConfigError(f"{path}: not a diffbench baseline (needs diffbench_baseline: 1); "
                          "write one with `diffbench gate init`")
    if "tasks" not in data and "metrics" in data:  # one task at the top level
        data["tasks"] = {data.pop("task", None) or "score": {
            k: data.pop(k, None) for k in ("protocol", "counts", "metrics")}}
    tasks = data.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise ConfigError(f"{path}: baseline has no tasks")
    for task, spec in tasks.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: tasks.{task}: expected protocol, counts and metrics")
        _check_metrics(path, task, spec.get("metrics"))
    return data


def _comparability(record: dict[str, Any], spec: dict[str, Any],
                   suite: dict[str, Any] | None) -> list[str]:
    problems = []
    current = record.get("suite") or None
    if suite and (not current or (current.get("name"), current.get("version"))
                  != (suite.get("name"), suite.get("version"))):
        have = current and f"{current.get('name')} v{current.get('version')}"
        problems.append(f"suite differs: baseline {suite.get('name')} v{suite.get('version')}, "
                        f"current {have}")
    if record["protocol"]["name"] != spec.get("protocol"):
        problems.append(f"protocol differs: baseline {spec.get('protocol')}, "
                        f"current {record['protocol']['name']}")
    if record.get("smoke"):
        problems.append("current results are a smoke run (--limit); they gate nothing")
    for key, expected in (spec.get("counts") or {}).items():
        actual = record["counts"].get(key)
        if actual != expected:
            problems.append(f"sample count '{key}' differs: baseline {expected}, current {actual}"
                            + _old_count_hint(record, key))
    return problems


def _old_count_hint(record: dict[str, Any], key: str) -> str:
    """Records of diffbench <= 0.1.0 counted as 'generated' only the last invocation's images."""
    generation = record.get("generation") or {}
    if key != "generated" or "generated" not in generation or "made_now" in generation:
        return ""
    return (" (an older diffbench wrote this record: its 'generated' counts only the images its "
            "last invocation made, not the images in the store; rerun the same `diffbench run` "
            "command with --rescore to rewrite it)")


def _tol_text(tol: dict[str, float]) -> str:
    parts = [f"±{tol['abs']:g}"] if "abs" in tol else []
    parts += [f"±{tol['rel'] * 100:g}%"] if "rel" in tol else []
    return " or ".join(parts) or "exact"


def _judge(task: str, name: str, spec: dict[str, Any], current: dict[str, Any] | None,
           missing: str = "metric missing from current results") -> Row:
    base = float(spec["value"])
    tol = spec.get("tolerance", {})
    row = Row(task, name, base, None, None, _tol_text(tol), "not comparable", missing)
    if current is None:
        return row
    value = float(current["value"])
    if not math.isfinite(value):  # records are read with this check; a dict passed in is not
        return replace(row, current=value, reason=f"current value is {value}")
    if spec.get("extractor") and current.get("extractor") != spec["extractor"]:
        return replace(row, current=value, reason="extractor fingerprint differs")
    delta = value - base
    higher = higher_is_better(name, {**current, **spec}, _no_direction)
    worse = delta < 0 if higher else delta > 0
    status, reason = ("improved" if delta else "pass"), ""
    if worse and abs(delta) <= max(tol.get("abs", 0.0), tol.get("rel", 0.0) * abs(base)):
        status, reason = "pass", "within tolerance"
    elif worse and spec.get("beyond_ci") and (ci := current.get("ci")) \
            and ci["low"] <= base <= ci["high"]:
        status, reason = "pass", "worse, but the baseline is inside the current confidence interval"
    elif worse:
        status, reason = "regression", f"{'lower' if higher else 'higher'} than baseline " \
                                       "beyond tolerance"
    return replace(row, current=value, delta=delta, status=status, reason=reason)


def entry_model(key: str, spec: dict[str, Any]) -> tuple[str | None, str]:
    """(model, task key) of a baseline entry: its ``model`` (or a ``model/task`` key's prefix;
    None in a baseline written before entries recorded it) and its task key."""
    model, sep, task = key.partition("/")
    return (spec.get("model") or model, task) if sep else (spec.get("model"), key)


def _current(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Records keyed by (model, task key); two records of one key are a usage error."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in gated(records):
        key = (model_of(rec), task_key(rec))
        if key in out:
            raise ConfigError(f"two results for task '{key[1]}' of model {key[0]} (runs "
                              f"{out[key]['run_id']} and {rec['run_id']}); pass one results "
                              "file per task and model")
        out[key] = rec
    return out


def _pick(key: str, spec: dict[str, Any], current: dict[tuple[str, str], dict[str, Any]],
          entries: set[tuple[str | None, str]]) -> tuple[tuple[str, str] | None, str]:
    """The (model, task) of the record an entry gates, or None with the reason (`entries`: the
    baseline's (model, task) pairs)."""
    model, task = entry_model(key, spec)
    runs = sorted(m for m, t in current if t == task)
    if model is None and len(runs) > 1:  # an old baseline: it does not say its model
        raise ConfigError(f"two results for task '{task}' (models {', '.join(runs)}) and the "
                          "baseline does not say which model it is for; they are results of "
                          "several models: add 'model: NAME' to its entries, or rebuild it "
                          "with `diffbench gate init`")
    if model is None:
        return ((runs[0], task) if runs else None), "task missing from current results"
    if (model, task) in current:
        return (model, task), ""
    others = [m for m in runs if (m, task) not in entries]  # runs no entry of theirs gates
    if others:
        return None, f"baseline is for {model}, current results are {', '.join(others)}'s"
    return None, "task missing from current results"


def gate(records: list[dict[str, Any]] | dict[str, Any], baseline: dict[str, Any]) -> Verdict:
    """Compare results records with a baseline, each record against its own model's entries."""
    current = _current([records] if isinstance(records, dict) else records)
    rows: list[Row] = []
    problems: list[str] = []
    used: set[tuple[str, str]] = set()
    entries = {entry_model(key, spec) for key, spec in baseline["tasks"].items()}
    for key, spec in baseline["tasks"].items():
        found, why = _pick(key, spec, current, entries)
        if found is None:
            rows += [_judge(key, name, m, None, why) for name, m in spec["metrics"].items()]
            if why.startswith("baseline is for"):
                problems.append(f"{key}: {why}")
            continue
        used.add(found)
        record = current[found]
        problems += [f"{key}: {p}" for p in _comparability(record, spec, baseline.get("suite"))]
        rows += [_judge(key, name, m, record["metrics"].get(name))
                 for name, m in spec["metrics"].items()]
    several = len({m for m, _ in current}) > 1
    notes = [f"{m + '/' if several else ''}{t}: not in the baseline, not gated"
             for m, t in current if (m, t) not in used]
    # Informative only: a baseline may itself be made with fine-tuned weights or fewer images.
    notes += [f"{t}: not comparable to published numbers: {'; '.join(v.all_reasons())}"
              for (_, t), v in ((k, comparability(current[k])) for k in sorted(used))
              if v.all_reasons()]
    return Verdict(rows, problems, notes)


def markdown(verdict: Verdict) -> str:
    """The verdict as a Markdown table for a pull request."""
    def number(x: float | None) -> str:
        return "—" if x is None else f"{x:.6g}"

    several = len({r.task for r in verdict.rows}) > 1
    lines = ["| metric | baseline | current | Δ | tolerance | status |",
             "|---|--:|--:|--:|---|---|"]
    for r in verdict.rows:
        status = r.status + (f" ({r.reason})" if r.reason else "")
        delta = "—" if r.delta is None else f"{r.delta:+.4g}"
        metric = f"{r.task}/{r.metric}" if several else r.metric
        lines.append(f"| {metric} | {number(r.baseline)} | {number(r.current)} | {delta} | "
                     f"{r.tolerance} | {status} |")
    lines += [f"\n**not comparable:** {p}" for p in verdict.problems]
    lines += [f"\n_note: {n}_" for n in verdict.notes]
    lines.append(f"\n**gate: {STATUS[verdict.exit_code].upper()}**")
    return "\n".join(lines)


def write_baseline(baseline: dict[str, Any], path: str | Path) -> Path:
    """Write a baseline file (YAML, or JSON when the name ends in .json)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(baseline, indent=2) + "\n" if path.suffix == ".json"
                    else yaml.safe_dump(baseline, sort_keys=False), encoding="utf-8")
    return path
