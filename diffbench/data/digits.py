"""The handwritten digits that ship with scikit-learn, as an offline image dataset.

1,797 8×8 grey digits (values 0..16), scaled to 0..255 and upsampled with PIL bilinear to
`size`×`size`, returned as RGB uint8 (three equal channels). The split is fixed: every fifth
image (index % 5 == 0) is the test split, the rest is train. This is what the offline demo
suite generates and scores; it needs no download and no data location.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from diffbench.errors import ConfigError

SPLITS = ("all", "train", "test")


@lru_cache(maxsize=8)
def load_digits(size: int = 32, split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 N×size×size×3, labels int64 N) of one split."""
    from sklearn.datasets import load_digits as sk_load_digits

    if split not in SPLITS:
        raise ConfigError(f"digits split '{split}': expected one of {', '.join(SPLITS)}")
    if not 8 <= size <= 512:
        raise ConfigError(f"digits size {size}: expected 8..512")
    bunch = sk_load_digits()
    grey = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    index = np.arange(len(grey))
    keep = {"all": index >= 0, "test": index % 5 == 0, "train": index % 5 != 0}[split]
    images = np.stack([np.asarray(Image.fromarray(g).resize((size, size), Image.BILINEAR))
                       for g in grey[keep]])
    rgb = np.repeat(images[..., None], 3, axis=-1)
    rgb.setflags(write=False)
    labels = bunch.target[keep].astype(np.int64)
    labels.setflags(write=False)
    return rgb, labels


class DigitsSource:
    """scikit-learn's handwritten digits (offline), upsampled to size×size RGB; split all|train|test."""

    location_arg = None  # the constructor argument that receives the data location

    def __init__(self, size: int = 32, split: str = "all"):
        self.size = size
        self.split = split
        self.images, self.labels = load_digits(size, split)
        self.keys = [f"{split}_{i:04d}" for i in range(len(self.images))]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.images[i]

    def describe(self) -> dict:
        """What the results record says about this source."""
        return {"kind": "sklearn-digits", "size": self.size, "split": self.split,
                "n": len(self)}

    def content_hash(self) -> str:
        """sha256 of the pixels and labels (stable across runs)."""
        import hashlib

        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(np.ascontiguousarray(self.labels).tobytes())
        return h.hexdigest()
