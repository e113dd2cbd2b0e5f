"""DINOv2 features for FD_DINOv2, preprocessed as NVlabs/edm2 ``DINOv2Detector``.

Three resize modes, all to 224×224 from uint8 images (EDM2's ``resize_mode``, and dgm-eval's
``--clean_resize``):

- ``torch``: float32, ``F.interpolate(size=(224, 224), mode='bicubic', antialias=True)``
  (EDM2's default, the ``edm2`` protocol);
- ``pil``: ``PIL.Image.resize((224, 224), BICUBIC)`` on the uint8 image, which EDM2 says
  matches the dgm-eval code exactly (the ``dgm-eval`` protocol);
- ``clean``: dgm-eval's ``--clean_resize``: PIL bicubic of each channel as a float32 ('F')
  image, no uint8 rounding, clipped to [0, 255] (`diffbench.features.resize.clean_resize`, the
  resize of clean-fid's ``clean`` mode, to 224).

Then /255, minus ImageNet mean, over ImageNet std, and the model's output: the 1024-d class
token after the final norm (`diffbench.features.dinov2_vit`; ViT-L/14's 1024-d by default, any
of the hub's four sizes with ``size``). Preprocessing runs per image in
loader workers (the same elementwise float32 operations EDM2 runs per batch). The network runs in
float32, as EDM2 runs it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffbench.errors import ConfigError, WeightsError, shown
from diffbench.features import weights_names
from diffbench.features.base import fingerprint_hash
from diffbench.features.dinov2_vit import DinoV2ViT, ViTConfig
from diffbench.features.resize import clean_resize
from diffbench.fsutil import file_sha256

LAYER = "dinov2_cls"
SIZE = 224
RESIZE_MODES = ("torch", "pil", "clean")
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
        elif self.resize_mode == "clean":
            x = torch.from_numpy(clean_resize(image, (SIZE, SIZE))).permute(2, 0, 1)
        else:
            x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]  # a writable copy
            x = torch.nn.functional.interpolate(x.to(torch.float32), size=(SIZE, SIZE),
                                                mode="bicubic", antialias=True)[0]
        x = x / 255
        x = x - torch.tensor(_MEAN, dtype=torch.float32).view(-1, 1, 1)
        return x / torch.tensor(_STD, dtype=torch.float32).view(-1, 1, 1)


def config_of(state: dict[str, torch.Tensor]) -> ViTConfig:
    """The ViT shape a DINOv2 state dict holds (all DINOv2 ViTs have 64-wide heads; ViT-g/14's
    FFN is SwiGLU, ``mlp.w12``/``mlp.w3``)."""
    try:
        dim = int(state["cls_token"].shape[-1])
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        swiglu = "blocks.0.mlp.w12.weight" in state
        hidden = (int(state["blocks.0.mlp.w12.weight"].shape[0]) // 2 if swiglu
                  else int(state["blocks.0.mlp.fc1.weight"].shape[0]))
        grid = int(round((state["pos_embed"].shape[1] - 1) ** 0.5))
        patch = int(state["patch_embed.proj.weight"].shape[-1])
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        raise WeightsError(f"not a DINOv2 ViT state dict (missing or odd {exc})") from None
    cfg = ViTConfig(embed_dim=dim, depth=depth, num_heads=max(dim // 64, 1),
                    mlp_ratio=4.0 if swiglu else hidden / dim, patch_size=patch,
                    img_size=grid * patch, ffn="swiglufused" if swiglu else "mlp")
    return cfg if cfg.hidden == hidden else dataclasses.replace(cfg, ffn_hidden=hidden)


def load_dinov2(weights_path: str | Path, size: str = "vitl14") -> DinoV2ViT:
    """The DINOv2 backbone of a state dict (official: ``dinov2_<size>_pretrain.pth``), loaded
    strictly (safe loading).

    The shape is read from the file, so other DINOv2 ViTs (and the tests' tiny random ones)
    load too; their sha256 and shape in the fingerprint tell them apart from the official one.
    """
    from diffbench.features.dino import read_state_dict

    state = read_state_dict(weights_path, "DINOv2")
    try:
        net = DinoV2ViT(config_of(state))
        net.load_state_dict(state, strict=True)
    except (RuntimeError, WeightsError) as exc:
        raise WeightsError(f"{weights_path} is not a DINOv2 {size} state dict "
                           f"(dinov2_{size}_pretrain.pth): {str(exc).splitlines()[0][:200]}; "
                           f"run `diffbench weights fetch {weights_names.DINOV2[size]}`") from exc
    return net.eval().requires_grad_(False)


class DinoV2Extractor:
    """FD_DINOv2's extractor: layer ``dinov2_cls``, the normalised class token (ViT-L/14:
    1024-d; ``size`` picks another of the hub's backbones, named ``dinov2-<size>``)."""

    layers = (LAYER,)

    def __init__(self, weights_path: str | Path, resize_mode: str = "torch",
                 device: str = "cpu", size: str = "vitl14"):
        if size not in weights_names.DINOV2:
            raise ConfigError(f"DINOv2 size {shown(size)}: expected one of "
                              f"{', '.join(weights_names.DINOV2_SIZES)}")
        self.name = weights_names.DINOV2[size]
        self.weights_path = Path(weights_path)
        self.prep = DinoV2Preprocess(resize_mode)
        self.device = torch.device(device)
        self.net = load_dinov2(self.weights_path, size).to(self.device)

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
                "arch": {"embed_dim": self.net.cfg.embed_dim, "depth": self.net.cfg.depth,
                         **({"ffn": self.net.cfg.ffn} if self.net.cfg.ffn != "mlp" else {})},
                "pos_embed": "bicubic, scale_factor (w//14+0.1)/grid, no antialias",
                "dtype": "float32"}

    def fingerprint_hash(self) -> str:
        """A short stable hash of the fingerprint."""
        return fingerprint_hash(self.fingerprint())
