"""The built-in "toy" adapter: deterministic, seed-driven smooth colour fields (tests, demos)."""

from __future__ import annotations

import colorsys
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from diffbench.adapters.base import Adapter, Request


class ToyAdapter(Adapter):
    """Smooth random colour fields; a class label sets the hue. Each image depends on its seed only."""

    conditions = frozenset({"class", "none"})
    # accepted and recorded but ignored, so real suites can be smoke-tested with the toy model
    sampler_args = frozenset({"mode", "solver", "steps", "cfg_scale", "guidance_interval"})

    def __init__(self, size: int = 32, delay: float = 0.0, num_classes: int = 1000,
                 device: str = "cpu", dtype: str = "fp32"):
        super().__init__(device=device, dtype=dtype)
        self.size, self.delay, self.num_classes = int(size), float(delay), int(num_classes)

    def _one(self, req: Request) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay)
        gen = torch.Generator().manual_seed(req.seed)
        coarse = torch.rand(1, 3, 4, 4, generator=gen, dtype=torch.float64)
        field = F.interpolate(coarse, size=(self.size, self.size), mode="bilinear",
                              align_corners=True)[0]
        if "class" in req.condition:
            hue = (int(req.condition["class"]) % self.num_classes) / self.num_classes
            tint = torch.tensor(colorsys.hsv_to_rgb(hue, 0.8, 1.0), dtype=torch.float64)
            field = 0.5 * field + 0.5 * tint[:, None, None]
        img = (field.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
        return img.numpy().copy()

    def generate(self, requests: Sequence[Request]) -> list[np.ndarray]:
        """One image per request; `delay` seconds per image simulates a slow model."""
        return [self._one(req) for req in requests]

    def describe(self) -> dict:
        """Name and arguments for the results record."""
        return {**super().describe(), "size": self.size, "num_classes": self.num_classes}
