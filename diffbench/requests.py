"""Turn a suite task into the list of generation `Request`s (stable keys, per-sample seeds)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from diffbench.adapters.base import Request
from diffbench.errors import ConfigError
from diffbench.suite import TaskSpec


def _seed(suite_seed: int, key: str) -> int:
    try:
        from diffbench.sampling.seeding import sample_seed
    except ImportError:  # helper E's module not there yet: same sha256 idea, documented fallback
        digest = hashlib.sha256(f"{suite_seed}:{key}".encode()).digest()
        return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
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


def task_requests(task: TaskSpec, suite_seed: int | None = None) -> list[Request]:
    """The requests of a task, sorted by key; seeds derive from the suite seed and the key."""
    seed = task.generation.seed if suite_seed is None else suite_seed
    sampler = request_sampler(task)
    if task.condition == "class":
        items = _class_conditions(task, seed)
    elif task.condition == "none":
        total = task.generation.num_images or task.generation.images_per_condition
        items = [(f"{i:06d}", {}) for i in range(total)]
    else:
        raise ConfigError(f"task condition '{task.condition}': request building is not implemented "
                          "yet (supported: class, none)")
    reqs = [Request(key=k, seed=_seed(seed, k), condition=c, sampler=dict(sampler))
            for k, c in items]
    return sorted(reqs, key=lambda r: r.key)
