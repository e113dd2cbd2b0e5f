"""A small digits classifier used as the feature extractor of the offline demo suite.

Architecture: two 3×3 conv layers (16, 32 channels, ReLU, 2×2 max-pool), a 64-unit ReLU layer
(`features`) and a 10-way linear head (`logits`). Input: uint8 RGB, converted to grey (channel
mean), scaled to [-1, 1] and resized to 32×32 (bilinear, no antialias) when needed. The weights
ship with diffbench (`diffbench/assets/demo/digits_classifier.safetensors`) and are rebuilt by
`scripts/train_demo_classifier.py`. It is a smoke-test extractor, not a research one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

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


def file_sha256(path: str | Path) -> str:
    """sha256 of a (small) weights file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
