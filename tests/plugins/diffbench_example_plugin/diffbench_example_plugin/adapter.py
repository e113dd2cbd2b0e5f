"""A model adapter: seeded noise images, each a function of its request's seed only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from diffbench.adapters.base import Adapter, Request
from diffbench.errors import ConfigError


class NoiseAdapter(Adapter):
    """Smooth seeded noise, brighter for higher class labels (an example plugin model)."""

    conditions = frozenset({"class", "none"})
    sampler_args = frozenset({"contrast"})

    def __init__(self, size: int = 32, device: str = "cpu", dtype: str = "fp32"):
        super().__init__(device=device, dtype=dtype)
        if size < 4:
            raise ConfigError(f"--model-arg size={size}: expected at least 4 pixels")
        self.size = int(size)

    def generate(self, requests: Sequence[Request]) -> list[np.ndarray]:
        """One uint8 size×size×3 image per request, drawn from a generator seeded by the request."""
        out = []
        for req in requests:
            rng = np.random.default_rng(req.seed)
            coarse = rng.random((4, 4))
            field = np.kron(coarse, np.ones((self.size // 4, self.size // 4)))
            level = 0.1 * int(req.condition.get("class", 0))
            contrast = float(req.sampler.get("contrast", 1.0))
            grey = np.clip((field - 0.5) * contrast + 0.5 * (1 + level), 0, 1)
            out.append(np.repeat((grey * 255).round().astype(np.uint8)[:, :, None], 3, axis=2))
        return out

    def describe(self) -> dict[str, Any]:
        """What the sample store and the results record say about this model."""
        return {**super().describe(), "size": self.size}

    def sampler_stats(self, sampler: dict[str, Any]) -> dict[str, Any]:
        """Network evaluations per image: none, it draws noise."""
        return {"nfe": 0}
