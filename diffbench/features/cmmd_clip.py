"""CMMD's image embeddings: OpenAI CLIP ViT-L/14 at 336 px, preprocessed as google-research/cmmd.

The reference (google-research ``cmmd/io_util.py`` and ``embedding.py``) reads each image with
PIL, crops the centred square of side min(w, h) (``left = (w - l) // 2``, ``top = (h - l) // 2``),
resizes it to 336×336 with PIL bicubic (antialiased), converts to float32 and divides by 255;
its ``jax.image.resize`` to the same 336×336 is then the identity, and ``normalize_image``
subtracts CLIP's mean and divides by its std. The network is OpenAI's ViT-L/14@336px (scenic
``vit_l14_336px``, converted from OpenAI's checkpoint), here open_clip's
``ViT-L-14-336-quickgelu`` given OpenAI's file; embeddings are L2-normalised by the metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffbench.features import weights_names
from diffbench.features.base import fingerprint_hash
from diffbench.features.clip import OPENAI_MEAN, OPENAI_STD, ClipExtractor

WEIGHTS_NAME = weights_names.CLIP_VIT_L14_336
EXTRACTOR_NAME = "clip-vit-l-14-336"
MODEL = "ViT-L-14-336-quickgelu"
SIZE = 336


@dataclass(frozen=True)
class CmmdPreprocess:
    """uint8 H×W×3 → normalised float32 3×S×S: centre square crop, PIL bicubic, /255, mean/std."""

    size: int = SIZE

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        from PIL import Image

        img = Image.fromarray(image)
        w, h = img.size
        side = min(w, h)
        top, left = (h - side) // 2, (w - side) // 2
        img = img.crop((left, top, left + side, top + side))
        x = np.asarray(img.resize((self.size, self.size), resample=Image.BICUBIC))
        x = x.astype(np.float32) / 255.0
        x = (x - np.asarray(OPENAI_MEAN, np.float32)) / np.asarray(OPENAI_STD, np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))

    def describe(self) -> dict[str, Any]:
        """The settings, for fingerprints."""
        return {"crop": "centre square", "resize": f"PIL bicubic {self.size}", "range": "/255",
                "mean": list(OPENAI_MEAN), "std": list(OPENAI_STD)}


class CmmdClipExtractor(ClipExtractor):
    """open_clip ViT-L/14@336px image embeddings (layer ``embed``) on cmmd's preprocessing."""

    def __init__(self, weights_path: str | Path, device: str = "cpu", model: str = MODEL):
        super().__init__(weights_path, model=model, name=EXTRACTOR_NAME,
                         weights_name=WEIGHTS_NAME, device=device)
        self.cmmd_prep = CmmdPreprocess(self.prep.size)

    def preprocessor(self) -> CmmdPreprocess:
        """The per-image preprocessing, picklable for loader workers."""
        return self.cmmd_prep

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 H×W×3 → normalised float32 3×336×336."""
        return self.cmmd_prep(image)

    def fingerprint(self) -> dict[str, Any]:
        """Network, weights hash, preprocessing, layer and dtype."""
        return {**super().fingerprint(), "preprocess": self.cmmd_prep.describe(),
                "tokenizer": None}

    def fingerprint_hash(self) -> str:
        """A short stable hash of the fingerprint."""
        return fingerprint_hash(self.fingerprint())
