"""VGG16 ``fc2_relu`` features: torch-fidelity's default extractor for precision/recall.

As torch-fidelity (and Kynkäänniemi et al.) compute them: torchvision's VGG16 (IMAGENET1K_V1
weights, ``vgg16-397923af.pth``) with the classifier cut after the second fully connected layer;
uint8 images resized to 224×224 with the TF1-exact bilinear resize, normalised with ImageNet's
mean and std scaled by 255; ``fc2`` (4096) and ``fc2_relu`` = ReLU(fc2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision

from diffbench.errors import WeightsError
from diffbench.features import weights_names
from diffbench.features.base import fingerprint_hash
from diffbench.features.resize import tf1_bilinear_image
from diffbench.fsutil import file_sha256

SIZE = 224
WEIGHTS_NAME = weights_names.VGG16
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255


def load_vgg16(weights_path: str | Path) -> torch.nn.Module:
    """torchvision VGG16 with a torchvision state dict, cut after fc2 (safe loading)."""
    net = torchvision.models.vgg16()
    try:
        state = torch.load(str(weights_path), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except FileNotFoundError as exc:
        raise WeightsError(f"VGG16 weights {weights_path} not found; run `diffbench weights "
                           f"fetch {WEIGHTS_NAME}` or pass --weights {WEIGHTS_NAME}=PATH") from exc
    except (RuntimeError, KeyError, ValueError, EOFError) as exc:
        raise WeightsError(f"{weights_path} is not a torchvision VGG16 state dict "
                           f"({str(exc).splitlines()[0][:160]})") from exc
    net.classifier = net.classifier[:4]  # fc1, ReLU, Dropout (identity in eval), fc2
    return net.eval().requires_grad_(False)


@dataclass(frozen=True)
class VGGPreprocess:
    """uint8 H×W×3 → float32 3×224×224 in [0, 255], TF1-exact bilinear (loader workers)."""

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(tf1_bilinear_image(image, (SIZE, SIZE)))


class VGG16Extractor:
    """torchvision VGG16 fc2 / fc2_relu features, preprocessed as torch-fidelity does."""

    name = WEIGHTS_NAME
    layers = ("fc2", "fc2_relu")

    def __init__(self, weights_path: str | Path, device: str = "cpu"):
        self.weights_path = Path(weights_path)
        self.device = torch.device(device)
        self.net = load_vgg16(self.weights_path).to(self.device)

    def preprocessor(self) -> VGGPreprocess:
        """The per-image preprocessing, picklable for loader workers."""
        return VGGPreprocess()

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 H×W×3 → float32 3×224×224 in [0, 255]."""
        return VGGPreprocess()(image)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Preprocessed N×3×224×224 → {fc2, fc2_relu}: float32 N×4096 on the CPU."""
        x = batch.to(self.device, torch.float32)
        x = (x - _MEAN.to(x.device)) / _STD.to(x.device)
        fc2 = self.net(x)
        return {"fc2": fc2.float().cpu(), "fc2_relu": torch.relu(fc2).float().cpu()}

    def fingerprint(self) -> dict[str, Any]:
        """Network, weights hash, preprocessing and layers."""
        return {"extractor": self.name, "weights_sha256": file_sha256(self.weights_path),
                "resize": "tf-bilinear", "size": SIZE,
                "normalisation": "imagenet mean/std x255", "layers": list(self.layers),
                "dtype": "float32"}

    def fingerprint_hash(self) -> str:
        """A short stable hash of the fingerprint."""
        return fingerprint_hash(self.fingerprint())
