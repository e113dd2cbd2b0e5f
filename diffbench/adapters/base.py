"""The adapter protocol: how diffbench asks a model for images.

An adapter receives `Request`s — a stable key, a per-sample seed, a condition and sampler
arguments — and returns one uint8 H×W×3 image per request, in order. Each image must be a pure
function of (model, key, seed, sampler arguments): adapters draw all randomness of a sample from
its own `torch.Generator` seeded with `Request.seed`, so batch size and GPU count never change
an image. Adapters declare which condition kinds they accept; a mismatch with the suite is an
error before any GPU time is spent.

What `diffbench run` calls on an adapter, in order (every hook but `generate` has a default
here; an adapter overrides the ones it needs, and nothing else is looked up):

0. `missing` (a classmethod, before loading): what is not here, listed by the run's preflight;
1. ``__init__(device, dtype, **model_args)``: ``--model-arg`` values; load weights here;
2. `check_task` per task and sweep point: condition kind and sampler argument names;
3. `check_keys` with the planned requests: inputs each request needs (files, masks), before
   the first image;
4. `describe`: what the sample store's fingerprint and the results record say about the model
   (checkpoint and its sha256, VAE, conventions); a change refuses an existing store;
5. `generate` batch by batch;
6. `sampler_stats` with the sampler arguments: model evaluations per image, recorded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from diffbench.errors import ConfigError

CONDITION_KINDS = ("class", "prompt", "tryon", "none")


@dataclass(frozen=True)
class Request:
    """One image to generate.

    ``key`` names the file (``<key>.png``); ``item`` is the dataset item it belongs to, for tasks
    whose conditions come from a dataset (several images per item have keys ``<item>-<i>``).
    """

    key: str
    seed: int
    condition: dict[str, Any] = field(default_factory=dict)
    sampler: dict[str, Any] = field(default_factory=dict)
    item: str | None = None


class Adapter(ABC):
    """Base class of model adapters (subclass it and register it under a name)."""

    conditions: ClassVar[frozenset[str]] = frozenset()
    sampler_args: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, device: str = "cpu", dtype: str = "fp32"):
        self.device = device
        self.dtype = dtype

    @abstractmethod
    def generate(self, requests: Sequence[Request]) -> list[np.ndarray]:
        """Images (uint8 H×W×3), one per request, in the order of the requests."""

    def describe(self) -> dict[str, Any]:
        """What the results record says about this model (name, arguments, weights hashes)."""
        return {"class": f"{type(self).__module__}:{type(self).__qualname__}",
                "device": self.device, "dtype": self.dtype}

    @classmethod
    def missing(cls, args: dict[str, Any], device: str) -> list[str]:
        """What this adapter needs with these --model-arg values and device that is not here (a
        checkout, a device, weights), one fix per line, found without loading anything; the
        run's preflight lists them with everything else missing (default: nothing)."""
        return []

    def check_keys(self, requests: Sequence[Request]) -> None:
        """Refuse requests whose inputs are missing, before the first image (default: none)."""
        return None

    def sampler_stats(self, sampler: dict[str, Any]) -> dict[str, Any]:
        """Model evaluations per image under these sampler arguments, for the record (default:
        none known)."""
        return {}

    def check_task(self, condition: str, sampler: dict[str, Any], where: str) -> None:
        """Refuse a task whose condition or sampler arguments this adapter cannot honour."""
        if condition not in self.conditions:
            raise ConfigError(f"{where}: condition '{condition}' is not accepted by "
                              f"{type(self).__name__} (accepts: {', '.join(sorted(self.conditions))})")
        unknown = set(sampler) - set(self.sampler_args)
        if unknown:
            raise ConfigError(f"{where}: sampler arguments {sorted(unknown)} are not understood "
                              f"by {type(self).__name__} (understands: "
                              f"{', '.join(sorted(self.sampler_args)) or 'none'})")
