"""DINO and DINOv2 ViT extractors (timm) and the eval-time crop preprocessing they share with CLIP.

DINO ViT-S/16 is the DreamBooth paper's subject-fidelity network: its CLS token (after the final
LayerNorm, 384-d) on images prepared with the official DINO eval transform, Resize(256, bicubic)
on the shorter side → CenterCrop(224) → ToTensor → Normalize(ImageNet mean/std). Hugging Face's
DINO processor (a direct 224 resize) does not reproduce the paper's values (google/dreambooth
issue #3). The network is timm's ``vit_small_patch16_224`` (the ``.dino`` tag), which has the
official checkpoint's parameter names; DINOv2 uses timm's ``vit_small_patch14_dinov2`` with its
position embeddings resampled by timm to the evaluation size.

`Preprocess` runs per image in loader workers and calls torchvision's functional transforms on a
PIL image, so it is exactly the transform the reference code applies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffbench.errors import ConfigError, WeightsError, shown
from diffbench.features.base import fingerprint_hash
from diffbench.fsutil import file_sha256

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("shortest", "squash")
INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos")


@dataclass(frozen=True)
class Preprocess:
    """uint8 H×W×3 → normalised float32 3×S×S: resize (shorter side or squash), centre crop.

    ``shortest``: torchvision ``Resize(resize)`` (shorter side to `resize`, the longer one
    ``int(resize * long / short)``) then ``CenterCrop(crop)``; ``squash``: ``Resize((resize,
    resize))`` with no crop (SigLIP). Resampling is PIL's (antialiased), as torchvision does it on
    PIL images; then ToTensor (/255) and Normalize(mean, std).
    """

    resize: int
    crop: int | None
    resize_mode: str = "shortest"
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(f"resize_mode {shown(self.resize_mode)}: expected one of {RESIZE_MODES}")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(f"interpolation {shown(self.interpolation)}: expected one of "
                              f"{INTERPOLATIONS}")

    @property
    def size(self) -> int:
        """The side of the network input."""
        return self.crop or self.resize

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        from PIL import Image
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        mode = InterpolationMode(self.interpolation)
        img = Image.fromarray(image)
        if self.resize_mode == "squash":
            img = TF.resize(img, [self.resize, self.resize], interpolation=mode)
        else:
            img = TF.resize(img, self.resize, interpolation=mode)
        if self.crop:
            img = TF.center_crop(img, self.crop)
        return TF.normalize(TF.to_tensor(img), list(self.mean), list(self.std))

    def describe(self) -> dict[str, Any]:
        """The settings, for fingerprints."""
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """Tensors of a weights file: safetensors, or a torch file loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} weights {path}: file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state: Any = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the same user error
        raise WeightsError(f"{path}: cannot read {what} weights ({str(exc).splitlines()[0][:160]})"
                           "; give a state-dict file (.pth/.pt/.safetensors)") from exc
    for wrapper in ("state_dict", "model", "teacher"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: {what} weights are not a state dict")
    for prefix in ("module.", "backbone."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_timm_vit(arch: str, weights_path: str | Path, img_size: int) -> torch.nn.Module:
    """timm ViT `arch` (no head) at `img_size` with a checkpoint in the official/timm layout."""
    import timm
    from timm.models.vision_transformer import checkpoint_filter_fn

    try:
        model = timm.create_model(arch, pretrained=False, num_classes=0, img_size=img_size)
    except RuntimeError as exc:
        raise ConfigError(f"timm has no architecture {shown(arch)} ({exc})") from None
    state = read_state_dict(weights_path, arch)
    try:
        # Converts the official DINO/DINOv2 layouts (drops mask_token, resamples pos_embed).
        state = checkpoint_filter_fn(state, model)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise WeightsError(f"{weights_path} does not fit timm {arch} "
                           f"({str(exc).splitlines()[0][:200]})") from exc
    return model.eval().requires_grad_(False)


class DinoExtractor:
    """CLS embedding of a timm DINO/DINOv2 ViT on eval-cropped images (layer ``cls``)."""

    layers = ("cls",)

    def __init__(self, weights_path: str | Path, arch: str = "vit_small_patch16_224.dino",
                 name: str = "dino-vits16", resize: int = 256, crop: int | None = 224,
                 resize_mode: str = "shortest", interpolation: str = "bicubic",
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 device: str = "cpu"):
        self.name, self.arch = name, arch
        self.weights_path = Path(weights_path)
        self.prep = Preprocess(int(resize), int(crop) if crop else None, resize_mode,
                               interpolation, tuple(mean), tuple(std))
        self.device = torch.device(device)
        self.net = load_timm_vit(arch, weights_path, self.prep.size).to(self.device)

    def preprocessor(self) -> Preprocess:
        """The per-image preprocessing, small and picklable for loader workers."""
        return self.prep

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 H×W×3 → normalised float32 3×S×S."""
        return self.prep(image)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Preprocessed N×3×S×S → {"cls": float32 N×D} on the CPU."""
        out = self.net(batch.to(self.device, torch.float32))
        return {"cls": out.float().cpu()}

    def fingerprint(self) -> dict[str, Any]:
        """Network, weights hash, preprocessing, layer and dtype."""
        return {"extractor": self.name, "arch": self.arch,
                "weights_sha256": file_sha256(self.weights_path),
                "preprocess": self.prep.describe(), "layers": list(self.layers),
                "dtype": "float32"}

    def fingerprint_hash(self) -> str:
        """A short stable hash of the fingerprint."""
        return fingerprint_hash(self.fingerprint())
