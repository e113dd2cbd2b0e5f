"""What every feature extractor offers, and the helpers for its fingerprint.

An extractor has a `name`, the `layers` it returns, a per-image CPU preprocessing step that runs in
data-loader workers (`preprocessor()` gives a small picklable callable; `preprocess(image)` applies
it), `forward(batch) -> {layer: float32 N×D}`, and a `fingerprint()`: the extractor name, sha256 of
its weights, resize mode, input size, normalisation, layers and internal dtype. Statistics and
cached features carry `fingerprint_hash()`; loading them under another fingerprint is an error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, runtime_checkable
from typing import Protocol as Interface  # not a diffbench.protocols.Protocol

import numpy as np
import torch


@runtime_checkable
class Extractor(Interface):
    """A feature extractor: preprocessing in loader workers, a batched forward, a fingerprint."""

    name: str
    layers: tuple[str, ...]

    def preprocessor(self) -> Callable[[np.ndarray], torch.Tensor]:
        """The per-image preprocessing (uint8 H×W×3 → float tensor), picklable for workers."""
        ...

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """Apply the per-image preprocessing in this process."""
        ...

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """A batch of preprocessed images → {layer: float32 N×D} on the CPU."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """What these features are: network, weights hash, preprocessing, layers, dtype."""
        ...

    def fingerprint_hash(self) -> str:
        """A short stable hash of `fingerprint()`."""
        ...


def fingerprint_hash(fingerprint: dict[str, Any]) -> str:
    """16 hex digits of the sha256 of the fingerprint as canonical JSON (sorted keys)."""
    text = json.dumps(fingerprint, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
