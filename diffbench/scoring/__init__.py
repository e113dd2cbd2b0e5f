"""Scoring a generated task: group its metrics by family and run each family's evaluator once.

`diffbench run` scores tasks here, and `diffbench score` (`diffbench.api.score`) is the
distribution family with the two image sets given: one scoring path.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable

from diffbench.metrics.spec import get_spec
from diffbench.scoring.base import EVALUATORS, EvalContext, FamilyResult, TaskInputs

Evaluator = Callable[[list[str], TaskInputs, EvalContext], FamilyResult]


def family_of(metric: str) -> tuple[str, Evaluator]:
    """The family name (from the metric's spec) and that family's evaluator."""
    family = get_spec(metric).family
    module, _, fn = EVALUATORS[family].partition(":")
    return family, getattr(importlib.import_module(module), fn)


def evaluate_task(inputs: TaskInputs, ctx: EvalContext) -> FamilyResult:
    """Every metric of the task, each (family, protocol) run once over the images it needs.

    A metric's own ``protocol:`` in the suite overrides the task's for that metric only.
    """
    from diffbench.protocols import get_protocol

    groups: dict[tuple[str, str], tuple[Evaluator, list[str]]] = {}
    for metric, spec in inputs.task.metrics.items():
        family, fn = family_of(metric)
        proto = spec.protocol or inputs.protocol.name
        groups.setdefault((family, proto), (fn, []))[1].append(metric)
    out = FamilyResult()
    main = inputs.protocol.name
    # The task's protocol first: its references and counts are the record's; a metric's own
    # protocol files its reference description under `<key>@<protocol>` and adds only counts
    # the task's protocol did not give.
    for (family, proto), (fn, metrics) in sorted(groups.items(), key=lambda g: g[0][1] != main):
        part_inputs = inputs if proto == main else dataclasses.replace(
            inputs, protocol=get_protocol(proto))
        start = time.perf_counter()
        part = fn(metrics, part_inputs, ctx)
        part.timings.setdefault(f"score_{family}", round(time.perf_counter() - start, 3))
        if proto != main:
            part.references = {f"{k}@{proto}": v for k, v in part.references.items()}
            part.counts = {k: v for k, v in part.counts.items() if k not in out.counts}
            part.timings = {f"{k}@{proto}": v for k, v in part.timings.items()}
        out = out.merge(part)
    return out


__all__ = ["EvalContext", "FamilyResult", "TaskInputs", "evaluate_task", "family_of"]
