"""Everything a run needs that is not here, found at once, before any model loads.

`run_problems` asks, for the selected tasks of a suite: can the device be used, does the adapter
have what it needs (`Adapter.missing`: a checkout, a device; nothing is loaded), where is each
dataset and statistics file the tasks read, and can every weights file the scoring will load be
resolved (each extractor of each metric's pass under its protocol, LPIPS backbones, CLIP/DINO
models: `metric_weights`). `check_ready` turns the answers into one error, a numbered list of
fixes, so a user fixes everything in one go instead of one thing per attempt, and a run never
generates for hours before finding that the Inception file is missing.

Weights are resolved as the scoring will resolve them (`diffbench.weights.resolve`): a file
already there is verified, a missing one is downloaded now unless offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from diffbench.errors import ConfigError, DiffbenchError


def metric_weights(metric: Any) -> list[str]:
    """The weights (registry names) the resolved `metric` (`diffbench.resolve.ResolvedMetric`)
    loads."""
    spec = metric.spec
    if spec.family == "distribution":
        from diffbench.features import extractor_weights

        name = extractor_weights(metric.feature()[0])
        return [name] if name else []
    if spec.family == "alignment":
        from diffbench.scoring.alignment import plan

        return [plan(metric.name, metric.given).spec.weights]
    if spec.weights is None:  # a paired metric without a network of its own (SSIM)
        return []
    from diffbench.scoring.paired import plan as paired_plan

    return list(spec.weights(dict(paired_plan(metric.name, metric.given).settings)))


def task_weights(task: Any) -> list[str]:
    """Every weights file the scoring of `task` loads, in order, without duplicates."""
    from diffbench.resolve import resolve_task

    out: list[str] = []
    for metric in resolve_task(task.metrics, task.protocol, protocol_args=task.protocol_args):
        out += [w for w in metric_weights(metric) if w not in out]
    return out


def _attempt(problems: list[str], call: Any, *args: Any, prefix: str = "", suffix: str = "",
             **kw: Any) -> Any:
    """`call(*args, **kw)`; when it raises a DiffbenchError, None and its message (with `prefix`
    and `suffix`) added to `problems`, once."""
    try:
        return call(*args, **kw)
    except DiffbenchError as exc:
        if f"{prefix}{exc}{suffix}" not in problems:
            problems.append(f"{prefix}{exc}{suffix}")
        return None


def _data_problems(tasks: dict[str, Any], data: dict[str, str]) -> list[str]:
    """What is wrong with each dataset (its location and layout: the reader is built, as the
    run will build it) and statistics file the tasks read."""
    from diffbench.refdata import open_dataset, resolve_data

    problems: list[str] = []
    for name, task in tasks.items():
        for where, ds in (("dataset", task.dataset), ("reference.dataset",
                                                       task.reference.dataset)):
            if ds is not None:
                _attempt(problems, open_dataset, ds.name, ds.reader, ds.args, data,
                         where=f"tasks.{name}.{where}")
        if task.reference.stats is not None:
            _attempt(problems, resolve_data, task.reference.stats, data)
    return problems


def run_problems(tasks: dict[str, Any], *, device: str, model: str | None = None,
                 model_args: Mapping[str, Any] | None = None,
                 data: Mapping[str, str] | None = None, weights: Mapping[str, str] | None = None,
                 scores: bool = True) -> list[str]:
    """One fix per line for everything the run of `tasks` lacks (empty: ready): on `device`,
    generating with `model` (``--model-arg``: `model_args`), reading ``--data`` and ``--weights``
    paths, and scoring unless `scores` is False (``--generate-only``, a ``--shard``)."""
    from diffbench.preflight import check_device
    from diffbench.registry import ADAPTERS
    from diffbench.weights import resolve

    problems: list[str] = []
    _attempt(problems, check_device, device)
    if model and any(t.kind == "generate" for t in tasks.values()):
        cls = _attempt(problems, ADAPTERS.get, model)
        missing = cls.missing(dict(model_args or {}), device) if cls is not None else []
        problems += [p for p in missing if p not in problems]
    problems += _data_problems(tasks, dict(data or {}))
    if not scores:
        return problems
    needed: dict[str, list[str]] = {}
    for name, task in tasks.items():
        for w in _attempt(problems, task_weights, task, prefix=f"task {name}: ") or []:
            needed.setdefault(w, []).append(name)
    for w, users in needed.items():
        _attempt(problems, resolve, w, dict(weights or {}),
                 suffix=f" (needed by task {', '.join(users)})")
    return problems


def check_ready(tasks: dict[str, Any], **run: Any) -> None:
    """Raise one error listing every fix `run_problems` finds (`run`: its keywords), numbered;
    nothing when ready."""
    problems = run_problems(tasks, **run)
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} things to fix before this run can start: "
                          + " ".join(f"({i}) {p.rstrip('.')};" for i, p in
                                     enumerate(problems, 1)).rstrip(";"))
