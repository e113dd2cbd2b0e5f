"""DINOv2 ViT-L/14 features for FD_DINOv2, preprocessed as NVlabs/edm2 ``DINOv2Detector``.

Two resize modes, both to 224×224 from uint8 images (EDM2's ``resize_mode``):

- ``torch``: float32, ``F.interpolate(size=(224, 224), mode='bicubic', antialias=True)``
  (EDM2's default, the ``edm2`` protocol);
- ``pil``: ``PIL.Image.resize((224, 224), BICUBIC)`` on the uint8 image, which EDM2 says
  matches the dgm-eval code exactly (the ``dgm-eval`` protocol).

Then /255, minus ImageNet mean, over ImageNet std, and the model's output: the 1024-d class
token after the final norm (`diffbench.features.dinov2_vit`). Preprocessing runs per image in
loader workers (the same elementwise float32 operations EDM2 runs per batch). The network runs in
float32, as EDM2 runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffbench.errors import ConfigError, WeightsError, shown
from diffbench.features import weights_names
from diffbench.features.base import fingerprint_hash
from diffbench.features.dinov2_vit import DinoV2ViT, ViTConfig
from diffbench.fsutil import file_sha256

WEIGHTS_NAME = weights_names.DINOV2_VITL14
EXTRACTOR_NAME = "dinov2-vitl14"
LAYER = "dinov2_cls"
SIZE = 224
RESIZE_MODES = ("torch", "pil")
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DinoV2Preprocess:
    """uint8 H×W×3 → normalised float32 3×224×224 (EDM2's DINOv2Detector, one image)."""

    resize_mode: str = "torch"

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(f"DINOv2 resize mode {shown(self.resize_mode)}: expected one of "
                              f"{', '.join(RESIZE_MODES)}")

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        if self.resize_mode == "pil":
            from PIL import Image

            small = np.array(Image.fromarray(image, "RGB").resize((SIZE, SIZE),
                                                                   Image.Resampling.BICUBIC))
            x = torch.from_numpy(small).permute(2, 0, 1).to(torch.float32)
        else:
            x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]  # a writable copy
            x = torch.nn.functional.interpolate(x.to(torch.float32), size=(SIZE, SIZE),
                                                mode="bicubic", antialias=True)[0]
        x = x / 255
        x = x - torch.tensor(_MEAN, dtype=torch.float32).view(-1, 1, 1)
        return x / torch.tensor(_STD, dtype=torch.float32).view(-1, 1, 1)


def config_of(state: dict[str, torch.Tensor]) -> ViTConfig:
    """The ViT shape a DINOv2 state dict holds (all DINOv2 ViTs have 64-wide heads)."""
    try:
        dim = int(state["cls_token"].shape[-1])
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        hidden = int(state["blocks.0.mlp.fc1.weight"].shape[0])
        grid = int(round((state["pos_embed"].shape[1] - 1) ** 0.5))
        patch = int(state["patch_embed.proj.weight"].shape[-1])
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        raise WeightsError(f"not a DINOv2 ViT state dict (missing or odd {exc})") from None
    return ViTConfig(embed_dim=dim, depth=depth, num_heads=max(dim // 64, 1),
                     mlp_ratio=hidden / dim, patch_size=patch, img_size=grid * patch)


def load_dinov2(weights_path: str | Path) -> DinoV2ViT:
    """The DINOv2 backbone of a state dict (official: ViT-L/14), loaded strictly (safe loading).

    The shape is read from the file, so smaller DINOv2 ViTs (and the tests' tiny random ones)
    load too; their sha256 in the fingerprint tells them apart from the official ViT-L/14.
    """
    from diffbench.features.dino import read_state_dict

    state = read_state_dict(weights_path, "DINOv2")
    try:
        net = DinoV2ViT(config_of(state))
        net.load_state_dict(state, strict=True)
    except (RuntimeError, WeightsError) as exc:
        raise WeightsError(f"{weights_path} is not a DINOv2 ViT-L/14 state dict "
                           f"(dinov2_vitl14_pretrain.pth): {str(exc).splitlines()[0][:200]}; "
                           f"run `diffbench weights fetch {WEIGHTS_NAME}`") from exc
    return net.eval().requires_grad_(False)


class DinoV2Extractor:
    """FD_DINOv2's extractor: layer ``dinov2_cls``, the 1024-d normalised class token."""

    name = EXTRACTOR_NAME
    layers = (LAYER,)

    def __init__(self, weights_path: str | Path, resize_mode: str = "torch",
                 device: str = "cpu"):
        self.weights_path = Path(weights_path)
        self.prep = DinoV2Preprocess(resize_mode)
        self.device = torch.device(device)
        self.net = load_dinov2(self.weights_path).to(self.device)

    def preprocessor(self) -> DinoV2Preprocess:
        """The per-image preprocessing, picklable for loader workers."""
        return self.prep

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 H×W×3 → normalised float32 3×224×224."""
        return self.prep(image)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Preprocessed N×3×224×224 → {"dinov2_cls": float32 N×1024} on the CPU."""
        return {LAYER: self.net(batch.to(self.device, torch.float32)).float().cpu()}

    def fingerprint(self) -> dict[str, Any]:
        """Network, weights hash, preprocessing, layer and dtype."""
        return {"extractor": self.name, "weights_sha256": file_sha256(self.weights_path),
                "resize": self.prep.resize_mode, "size": SIZE,
                "normalisation": "x/255, imagenet mean/std", "layers": list(self.layers),
                "arch": {"embed_dim": self.net.cfg.embed_dim, "depth": self.net.cfg.depth},
                "pos_embed": "bicubic, scale_factor (w//14+0.1)/grid, no antialias",
                "dtype": "float32"}

    def fingerprint_hash(self) -> str:
        """A short stable hash of the fingerprint."""
        return fingerprint_hash(self.fingerprint())
