"""CLIP and SigLIP image/text embeddings through open_clip, from an explicit weights file.

The DreamBench protocol uses OpenAI's CLIP ViT-B/32. OpenAI's CLIP was trained with QuickGELU;
open_clip's ``ViT-B-32`` config builds nn.GELU and, given OpenAI weights, only warns (open_clip
3.3): the model runs with the wrong activation and every number shifts. diffbench therefore uses
the ``ViT-B-32-quickgelu`` config and refuses an OpenAI weights name on a config without
QuickGELU.

Weights files: an open_clip state dict (``.safetensors``, ``.bin``, ``.pt``, loaded by
open_clip with ``weights_only=True``), or OpenAI's TorchScript archive ``ViT-B-32.pt``, whose
tensors are read with ``torch.jit.load`` (TorchScript's own deserialiser; no Python pickle code
runs) as open_clip's OpenAI loader does. Preprocessing is open_clip's eval transform for the
weights' tag: OpenAI/OpenCLIP: Resize(224, bicubic, shorter side) → CenterCrop(224), OpenAI
mean/std; SigLIP: Resize((224, 224), bicubic) with mean = std = 0.5.
"""

from __future__ import annotations

import contextlib
import logging
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffbench.errors import ConfigError, WeightsError, shown
from diffbench.features.base import fingerprint_hash
from diffbench.features.dino import Preprocess
from diffbench.fsutil import file_sha256

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


def is_torchscript(path: str | Path) -> bool:
    """True for a TorchScript archive (OpenAI's JIT CLIP files), False for state dicts."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in zf.namelist())


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    # open_clip logs "No pretrained weights loaded" on the root logger before we load them.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def model_config(model: str) -> dict[str, Any]:
    """open_clip's config of `model`, or ConfigError listing a few close names."""
    import open_clip

    cfg = open_clip.get_model_config(model)
    if cfg is None:
        import difflib
        close = difflib.get_close_matches(model, open_clip.list_models(), n=3)
        raise ConfigError(f"open_clip has no model config {shown(model)}"
                          + (f"; did you mean {', '.join(close)}?" if close else ""))
    return cfg


def load_open_clip(model: str, weights_path: str | Path) -> torch.nn.Module:
    """open_clip `model` with the weights of `weights_path` (state dict or OpenAI JIT archive)."""
    import open_clip

    model_config(model)
    path = Path(weights_path)
    if not path.is_file():
        raise WeightsError(f"CLIP weights {path}: file not found")
    try:
        if is_torchscript(path):
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
            # Metadata of OpenAI's archives, and the text mask (a non-persistent buffer that
            # scripted open_clip models save), are not parameters of open_clip's CLIP.
            for key in ("input_resolution", "context_length", "vocab_size", "attn_mask"):
                state.pop(key, None)
            with _quiet_root_logger():
                net = open_clip.create_model(model, pretrained=None)
            net.load_state_dict(state, strict=True)
        else:
            net = open_clip.create_model(model, pretrained=str(path))
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        raise WeightsError(f"{path} does not load into open_clip {model} "
                           f"({str(exc).splitlines()[0][:200]})") from exc
    return net.eval().requires_grad_(False)


def _image_size(net: torch.nn.Module) -> int:
    size = getattr(net.visual, "image_size", 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


class ClipExtractor:
    """open_clip image embeddings (layer ``embed``) and text embeddings (`encode_text`)."""

    layers = ("embed",)

    def __init__(self, weights_path: str | Path, model: str = "ViT-B-32-quickgelu",
                 name: str = "clip-vit-b-32", weights_name: str | None = None,
                 resize_mode: str = "shortest", interpolation: str = "bicubic",
                 mean: tuple[float, ...] = OPENAI_MEAN, std: tuple[float, ...] = OPENAI_STD,
                 tokenizer: str | None = None, device: str = "cpu"):
        cfg = model_config(model)
        self.quick_gelu = bool(cfg.get("quick_gelu", False))
        if weights_name and "openai" in weights_name and not self.quick_gelu:
            raise ConfigError(f"open_clip config {shown(model)} uses nn.GELU but weights "
                              f"'{weights_name}' are OpenAI's, trained with QuickGELU; use "
                              f"'{model}-quickgelu' (open_clip would only warn and give other "
                              "numbers)")
        self.name, self.model, self.weights_name = name, model, weights_name
        self.weights_path = Path(weights_path)
        self.device = torch.device(device)
        self.net = load_open_clip(model, weights_path).to(self.device)
        size = _image_size(self.net)
        self.prep = Preprocess(size, size if resize_mode == "shortest" else None, resize_mode,
                               interpolation, tuple(mean), tuple(std))
        self.tokenizer_name = tokenizer
        self._tokenizer: Any = None

    def preprocessor(self) -> Preprocess:
        """The per-image preprocessing, small and picklable for loader workers."""
        return self.prep

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 H×W×3 → normalised float32 3×S×S."""
        return self.prep(image)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Preprocessed N×3×S×S → {"embed": float32 N×D} (not normalised) on the CPU."""
        out = self.net.encode_image(batch.to(self.device, torch.float32))
        return {"embed": out.float().cpu()}

    def tokenizer(self) -> Any:
        """open_clip's tokenizer of the model (SigLIP: a Hugging Face tokenizer, local dir ok)."""
        if self._tokenizer is None:
            import open_clip
            from open_clip.tokenizer import HFTokenizer

            text_cfg = model_config(self.model).get("text_cfg", {})
            try:
                if self.tokenizer_name:
                    self._tokenizer = HFTokenizer(
                        self.tokenizer_name, context_length=text_cfg.get("context_length", 77),
                        **text_cfg.get("tokenizer_kwargs", {}))
                else:
                    self._tokenizer = open_clip.get_tokenizer(self.model)
            except (OSError, ValueError, RuntimeError) as exc:
                raise WeightsError(f"cannot load the tokenizer of {self.model} ({exc}); "
                                   "download it once (Hugging Face cache) or pass a local "
                                   "tokenizer folder as the metric argument 'tokenizer'") from exc
        return self._tokenizer

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """float32 N×D text embeddings (not normalised) of `texts`."""
        tok = self.tokenizer()
        parts = []
        for i in range(0, len(texts), batch_size):
            tokens = tok(list(texts[i:i + batch_size])).to(self.device)
            parts.append(self.net.encode_text(tokens).float().cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def fingerprint(self) -> dict[str, Any]:
        """Network, weights hash, activation, preprocessing, tokenizer, layer and dtype."""
        return {"extractor": self.name, "model": self.model, "quick_gelu": self.quick_gelu,
                "weights_sha256": file_sha256(self.weights_path),
                "preprocess": self.prep.describe(),
                "tokenizer": self.tokenizer_name or f"open_clip:{self.model}",
                "layers": list(self.layers), "dtype": "float32"}

    def fingerprint_hash(self) -> str:
        """A short stable hash of the fingerprint."""
        return fingerprint_hash(self.fingerprint())
