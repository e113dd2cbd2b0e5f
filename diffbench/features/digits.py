"""A small digits classifier used as the feature extractor of the offline demo suite.

Architecture: two 3×3 conv layers (16, 32 channels, ReLU, 2×2 max-pool), a 64-unit ReLU layer
(`features`) and a 10-way linear head (`logits`). Input: uint8 RGB, converted to grey (channel
mean), scaled to [-1, 1] and resized to 32×32 (bilinear, no antialias) when needed. The weights
ship with diffbench (`diffbench/assets/demo/digits_classifier.safetensors`) and are rebuilt by
`scripts/train_demo_classifier.py`. It is a smoke-test extractor, not a research one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diffbench.errors import WeightsError
from diffbench.features.base import fingerprint_hash
from diffbench.fsutil import file_sha256

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "demo"
DEFAULT_WEIGHTS = ASSETS / "digits_classifier.safetensors"
SIZE = 32


class DigitsNet(nn.Module):
    """The demo digits classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 8 * 8, 64)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features (64) and logits (10) of grey images in [-1, 1], N×1×32×32."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        feats = F.relu(self.fc(x.flatten(1)))
        return {"features": feats, "logits": self.head(feats)}


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 N×3×H×W (or N×H×W×3 numpy-like) → grey N×1×32×32 in [-1, 1]."""
    if images.shape[-1] == 3 and images.shape[1] != 3:
        images = images.permute(0, 3, 1, 2)
    x = images.float().mean(dim=1, keepdim=True) / 127.5 - 1.0
    if x.shape[-2:] != (SIZE, SIZE):
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return x


def load_digits_net(path: str | Path = DEFAULT_WEIGHTS) -> DigitsNet:
    """The classifier with weights from a safetensors file."""
    from safetensors.torch import load_file

    net = DigitsNet()
    net.load_state_dict(load_file(str(path)))
    return net.eval()


@dataclass(frozen=True)
class DigitsPreprocess:
    """uint8 H×W×3 → grey float32 1×32×32 in [-1, 1] (runs in loader workers)."""

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None]
        return to_input(x)[0]


class DigitsExtractor:
    """The demo digits classifier as a feature extractor: `features` (64-d) and `logits` (10)."""

    name = "digits-classifier"
    layers = ("features", "logits")

    def __init__(self, weights_path: str | Path = DEFAULT_WEIGHTS, device: str = "cpu"):
        self.weights_path = Path(weights_path)
        if not self.weights_path.is_file():
            raise WeightsError(f"digits classifier weights {self.weights_path} not found; "
                               "rebuild them with scripts/train_demo_classifier.py")
        self.device = torch.device(device)
        self.net = load_digits_net(self.weights_path).to(self.device)

    def preprocessor(self) -> DigitsPreprocess:
        """The per-image preprocessing, picklable for loader workers."""
        return DigitsPreprocess()

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 H×W×3 → float32 1×32×32 in [-1, 1]."""
        return DigitsPreprocess()(image)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Preprocessed N×1×32×32 → {features: N×64, logits: N×10} float32 on the CPU."""
        out = self.net(batch.to(self.device, torch.float32))
        return {k: v.float().cpu() for k, v in out.items()}

    def fingerprint(self) -> dict[str, Any]:
        """Network, weights hash, preprocessing and layers."""
        return {"extractor": self.name, "weights_sha256": file_sha256(self.weights_path),
                "resize": "bilinear", "size": SIZE, "normalisation": "grey mean, x/127.5-1",
                "layers": list(self.layers), "dtype": "float32"}

    def fingerprint_hash(self) -> str:
        """A short stable hash of the fingerprint."""
        return fingerprint_hash(self.fingerprint())
