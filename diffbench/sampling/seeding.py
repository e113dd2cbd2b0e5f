"""Per-sample seeds and generators: a sample's noise never depends on batch composition."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

_MASK_63 = (1 << 63) - 1


def sample_seed(suite_seed: int, key: str) -> int:
    """Stable 63-bit non-negative seed from sha256 of f"{suite_seed}/{key}"."""
    digest = hashlib.sha256(f"{int(suite_seed)}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & _MASK_63


def make_generators(seeds: Sequence[int], device: str | torch.device = "cpu") -> list[torch.Generator]:
    """One `torch.Generator` on `device` per seed, seeded with that seed."""
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def randn_per_sample(generators: Sequence[torch.Generator], shape_per_sample: Sequence[int],
                     device: str | torch.device = "cpu",
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise [len(generators), *shape]; row i is drawn from generators[i] only."""
    shape = tuple(int(d) for d in shape_per_sample)
    if not generators:
        return torch.empty((0, *shape), device=device, dtype=dtype)
    rows = [torch.randn(shape, generator=g, device=device, dtype=dtype) for g in generators]
    return torch.stack(rows)
