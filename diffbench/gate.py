"""Regression gate: compare a results record with a committed baseline.

Each metric has a direction (higher or lower is better), an absolute or relative tolerance, and
optionally ``beyond_ci``: a worse value fails only when the baseline lies outside the current
confidence interval too. Improvements never fail. A comparison that cannot be made (missing
metric, other protocol, other extractor fingerprint, other sample count) is "not comparable",
never a pass.

Exit codes: 0 pass, 1 regression, 2 usage error, 3 not comparable.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from diffbench.display import METRICS as METRIC_DISPLAY
from diffbench.errors import ConfigError

PASS, REGRESSION, NOT_COMPARABLE = 0, 1, 3
BASELINE_FORMAT = 1

# Bounded scores get an absolute tolerance, unbounded ones a relative one (harness note §4).
DEFAULT_TOLERANCE: dict[str, dict[str, float]] = {
    "fid": {"rel": 0.05}, "sfid": {"rel": 0.05}, "kid": {"rel": 0.10}, "isc": {"rel": 0.05},
    "precision": {"abs": 0.02}, "recall": {"abs": 0.02}, "ssim": {"abs": 0.005},
    "lpips": {"abs": 0.005}, "dino": {"abs": 0.01}, "clip_i": {"abs": 0.01},
    "clip_t": {"abs": 0.005}, "accuracy": {"abs": 0.02},
}
FALLBACK_TOLERANCE = {"rel": 0.05}

@dataclass(frozen=True)
class Row:
    """One metric's verdict."""

    metric: str
    baseline: float | None
    current: float | None
    delta: float | None
    tolerance: str
    status: str  # pass | improved | regression | not comparable
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """The gate's answer: the rows, problems that make the runs incomparable, the exit code."""

    rows: list[Row]
    problems: list[str]

    @property
    def exit_code(self) -> int:
        """0 pass, 1 regression, 3 not comparable (which wins over a regression)."""
        if self.problems or any(r.status == "not comparable" for r in self.rows):
            return NOT_COMPARABLE
        return REGRESSION if any(r.status == "regression" for r in self.rows) else PASS

    def to_json(self) -> dict[str, Any]:
        """A machine-readable form of the verdict."""
        status = {PASS: "pass", REGRESSION: "regression", NOT_COMPARABLE: "not comparable"}
        return {"status": status[self.exit_code], "exit_code": self.exit_code,
                "problems": self.problems, "metrics": [asdict(r) for r in self.rows]}


def _direction(name: str, record_metric: dict[str, Any] | None, spec: dict[str, Any]) -> bool:
    if "higher_is_better" in spec:
        return bool(spec["higher_is_better"])
    if record_metric and "higher_is_better" in record_metric:
        return bool(record_metric["higher_is_better"])
    if name in METRIC_DISPLAY:
        return METRIC_DISPLAY[name].higher_is_better
    raise ConfigError(f"baseline metric '{name}': no direction known; add "
                      "'higher_is_better: true|false' to its entry")


def init_baseline(record: dict[str, Any], source: str = "") -> dict[str, Any]:
    """A baseline from a results record, with default tolerances per metric, for review."""
    metrics = {}
    for name, m in record["metrics"].items():
        entry: dict[str, Any] = {"value": m["value"],
                                 "higher_is_better": _direction(name, m, {}),
                                 "tolerance": dict(DEFAULT_TOLERANCE.get(name, FALLBACK_TOLERANCE)),
                                 "beyond_ci": False}
        if m.get("extractor"):
            entry["extractor"] = m["extractor"]
        metrics[name] = entry
    return {"diffbench_baseline": BASELINE_FORMAT, "source": source,
            "suite": record.get("suite"), "task": record.get("task"),
            "protocol": record["protocol"]["name"],
            "counts": {k: v for k, v in record["counts"].items() if v is not None},
            "metrics": metrics}


def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read a baseline file (YAML or JSON) and check its shape."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: baseline not found; write one with "
                          f"`diffbench gate init RESULTS -o {path}`")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: baseline is not valid YAML/JSON") from exc
    if not isinstance(data, dict) or data.get("diffbench_baseline") != BASELINE_FORMAT:
        raise ConfigError(f"{path}: not a diffbench baseline (needs diffbench_baseline: 1); "
                          "write one with `diffbench gate init`")
    metrics = data.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise ConfigError(f"{path}: baseline has no metrics")
    for name, spec in metrics.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("value"), (int, float)):
            raise ConfigError(f"{path}: metrics.{name}: needs a numeric 'value'")
        tol = spec.get("tolerance", {})
        if not isinstance(tol, dict) or set(tol) - {"abs", "rel"} or any(
                not isinstance(v, (int, float)) or v < 0 for v in tol.values()):
            raise ConfigError(f"{path}: metrics.{name}.tolerance: expected {{abs: X}} and/or "
                              "{rel: X} with X >= 0")
    return data


def _comparability(record: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    problems = []
    if record["protocol"]["name"] != baseline.get("protocol"):
        problems.append(f"protocol differs: baseline {baseline.get('protocol')}, "
                        f"current {record['protocol']['name']}")
    if record.get("smoke"):
        problems.append("current results are a smoke run (--limit); they gate nothing")
    for key, expected in (baseline.get("counts") or {}).items():
        actual = record["counts"].get(key)
        if actual != expected:
            problems.append(f"sample count '{key}' differs: baseline {expected}, current {actual}")
    return problems


def _allowed(tol: dict[str, float], base: float) -> float:
    return max(tol.get("abs", 0.0), tol.get("rel", 0.0) * abs(base))


def _tol_text(tol: dict[str, float]) -> str:
    parts = []
    if "abs" in tol:
        parts.append(f"±{tol['abs']:g}")
    if "rel" in tol:
        parts.append(f"±{tol['rel'] * 100:g}%")
    return " or ".join(parts) or "exact"


def _judge(name: str, spec: dict[str, Any], current: dict[str, Any] | None) -> Row:
    base = float(spec["value"])
    tol = spec.get("tolerance", {})
    if current is None:
        return Row(name, base, None, None, _tol_text(tol), "not comparable",
                   "metric missing from current results")
    if spec.get("extractor") and current.get("extractor") != spec["extractor"]:
        return Row(name, base, current["value"], None, _tol_text(tol), "not comparable",
                   "extractor fingerprint differs")
    value = float(current["value"])
    delta = value - base
    higher = _direction(name, current, spec)
    worse = delta < 0 if higher else delta > 0
    if not worse:
        return Row(name, base, value, delta, _tol_text(tol), "improved" if delta else "pass")
    if abs(delta) <= _allowed(tol, base):
        return Row(name, base, value, delta, _tol_text(tol), "pass", "within tolerance")
    ci = current.get("ci")
    if spec.get("beyond_ci") and ci and ci["low"] <= base <= ci["high"]:
        return Row(name, base, value, delta, _tol_text(tol), "pass",
                   "worse, but the baseline is inside the current confidence interval")
    return Row(name, base, value, delta, _tol_text(tol), "regression",
               f"{'lower' if higher else 'higher'} than baseline beyond tolerance")


def gate(record: dict[str, Any], baseline: dict[str, Any]) -> Verdict:
    """Compare a results record with a baseline."""
    problems = _comparability(record, baseline)
    rows = [_judge(name, spec, record["metrics"].get(name))
            for name, spec in baseline["metrics"].items()]
    return Verdict(rows, problems)


def markdown(verdict: Verdict) -> str:
    """The verdict as a Markdown table for a pull request."""
    def num(x: float | None) -> str:
        return "—" if x is None else f"{x:.6g}"

    lines = ["| metric | baseline | current | Δ | tolerance | status |",
             "|---|---|---|---|---|---|"]
    for r in verdict.rows:
        status = r.status + (f" ({r.reason})" if r.reason else "")
        delta = "—" if r.delta is None else f"{r.delta:+.4g}"
        lines.append(f"| {r.metric} | {num(r.baseline)} | {num(r.current)} | {delta} | "
                     f"{r.tolerance} | {status} |")
    for p in verdict.problems:
        lines.append(f"\n**not comparable:** {p}")
    word = {PASS: "PASS", REGRESSION: "REGRESSION", NOT_COMPARABLE: "NOT COMPARABLE"}
    lines.append(f"\n**gate: {word[verdict.exit_code]}**")
    return "\n".join(lines)


def write_baseline(baseline: dict[str, Any], path: str | Path) -> Path:
    """Write a baseline file (YAML, or JSON when the name ends in .json)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        text = json.dumps(baseline, indent=2) + "\n"
    else:
        text = yaml.safe_dump(baseline, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path
