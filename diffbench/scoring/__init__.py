"""Scoring a generated task: group its metrics by family and run each family's evaluator once."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable

from diffbench.errors import RegistryError
from diffbench.scoring.base import FAMILIES, EvalContext, FamilyResult, TaskInputs

Evaluator = Callable[[list[str], TaskInputs, EvalContext], FamilyResult]


def family_of(metric: str) -> tuple[str, Evaluator]:
    """The family name and evaluator of a registered metric."""
    from diffbench.registry import METRICS

    cls = METRICS.get(metric)
    family = getattr(cls, "family", None)
    if family in FAMILIES:
        module, _, fn = FAMILIES[family].partition(":")
        return family, getattr(importlib.import_module(module), fn)
    if callable(getattr(cls, "evaluate", None)):
        return f"plugin:{metric}", cls.evaluate
    raise RegistryError(f"metric '{metric}' has no known family ({family!r}) and no evaluate(); "
                        f"families: {', '.join(FAMILIES)}")


def evaluate_task(inputs: TaskInputs, ctx: EvalContext) -> FamilyResult:
    """Every metric of the task, each family run once over the images it needs."""
    groups: dict[str, tuple[Evaluator, list[str]]] = {}
    for metric in inputs.task.metrics:
        family, fn = family_of(metric)
        groups.setdefault(family, (fn, []))[1].append(metric)
    out = FamilyResult()
    for family, (fn, metrics) in groups.items():
        start = time.perf_counter()
        part = fn(metrics, inputs, ctx)
        part.timings.setdefault(f"score_{family}", round(time.perf_counter() - start, 3))
        out = out.merge(part)
    return out


__all__ = ["EvalContext", "FamilyResult", "TaskInputs", "evaluate_task", "family_of"]
