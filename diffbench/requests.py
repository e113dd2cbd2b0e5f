"""Turn a suite task into the list of generation `Request`s (stable keys, per-sample seeds)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from diffbench.adapters.base import Request
from diffbench.data.base import Item, check_key
from diffbench.errors import ConfigError
from diffbench.sampling.seeding import sample_seed
from diffbench.suite import TaskSpec


def _seed(suite_seed: int, key: str) -> int:
    return int(sample_seed(suite_seed, key))


def _num_classes(task: TaskSpec) -> int:
    sampler = task.generation.sampler
    if "num_classes" in sampler:
        return int(sampler["num_classes"])
    if task.dataset is not None and "num_classes" in task.dataset.args:
        return int(task.dataset.args["num_classes"])
    return 1000


def _class_conditions(task: TaskSpec, suite_seed: int) -> list[tuple[str, dict[str, Any]]]:
    gen = task.generation
    n_cls, per = _num_classes(task), gen.images_per_condition
    total = gen.num_images or n_cls * per
    if gen.sampler.get("labels", "balanced") == "uniform":
        rng = np.random.default_rng(_seed(suite_seed, "labels"))
        labels = rng.integers(0, n_cls, size=total)
        return [(f"{i:06d}", {"class": int(lab)}) for i, lab in enumerate(labels)]
    # balanced: image i of every class before image i+1, so truncation stays balanced
    out = [(f"c{c:04d}_{i:03d}", {"class": c}) for i in range(per) for c in range(n_cls)]
    return out[:total]


REQUEST_OPTIONS = ("labels", "num_classes")  # sampler keys that shape the requests, not the model


def request_sampler(task: TaskSpec) -> dict[str, Any]:
    """The sampler arguments the adapter receives (request-building options removed)."""
    return {k: v for k, v in task.generation.sampler.items() if k not in REQUEST_OPTIONS}


def _item_conditions(task: TaskSpec, items: Sequence[Item]) -> list[tuple[str, dict, str]]:
    per = task.generation.images_per_condition
    out = []
    for it in items:
        check_key(it.key, "dataset item")
        for i in range(per):
            out.append((it.key if per == 1 else f"{it.key}-{i}", it.condition, it.key))
    return out


def task_requests(task: TaskSpec, suite_seed: int | None = None,
                  items: Sequence[Item] | None = None) -> list[Request]:
    """The requests of a task, sorted by key; seeds derive from the suite seed and the key.

    Conditions come from the task dataset's `items` when given (``images_per_condition`` images
    each, keys ``<item>`` or ``<item>-<i>``), else from the task's condition kind (class labels,
    or unconditional). ``num_images`` keeps the first N keys.
    """
    seed = task.generation.seed if suite_seed is None else suite_seed
    sampler = request_sampler(task)
    if items is not None:
        rows = _item_conditions(task, items)
    elif task.condition == "class":
        rows = [(k, c, None) for k, c in _class_conditions(task, seed)]
    elif task.condition == "none":
        total = task.generation.num_images or task.generation.images_per_condition
        rows = [(f"{i:06d}", {}, None) for i in range(total)]
    else:
        raise ConfigError(f"task condition '{task.condition}' needs a task dataset (dataset: with "
                          "a reader such as vitonhd or dreambooth) to build its requests")
    reqs = sorted((Request(key=k, seed=_seed(seed, k), condition=dict(c), sampler=dict(sampler),
                           item=it) for k, c, it in rows), key=lambda r: r.key)
    keys = [r.key for r in reqs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ConfigError(f"task requests: key '{dup}' appears twice; dataset item keys must be "
                          "unique")
    if task.generation.num_images and items is not None:
        reqs = reqs[:task.generation.num_images]
    return reqs


def _condition_of(req: Request) -> str:
    """What one condition is: the dataset item (pair, prompt) or the condition itself (class)."""
    if req.item is not None:
        return f"item:{req.item}"
    return json.dumps(req.condition, sort_keys=True, default=str)


def spread(requests: Sequence[Request], n: int) -> list[Request]:
    """`n` of `requests` spread over their conditions (``--limit``), sorted by key.

    Round-robin over the conditions (classes, prompts, try-on pairs) in key order: the first
    image of every condition, then the second of every condition, and so on. When a round has
    more conditions than images left, evenly spaced ones are taken, so a limit below the number
    of conditions still spans them (every 7th of 750 DreamBench prompts for 100 images).
    Deterministic: the same requests and `n` give the same keys.
    """
    groups: dict[str, list[Request]] = {}
    for req in sorted(requests, key=lambda r: r.key):
        groups.setdefault(_condition_of(req), []).append(req)
    chosen: list[Request] = []
    depth = 0
    while len(chosen) < n:
        row = [g[depth] for g in groups.values() if len(g) > depth]
        if not row:
            break
        left = n - len(chosen)
        if len(row) > left:
            row = [row[j * len(row) // left] for j in range(left)]
        chosen += row
        depth += 1
    return sorted(chosen, key=lambda r: r.key)
