"""Decoding one image file to RGB uint8, with a clear error for anything unusable.

Rules (the same as torch-fidelity and clean-fid, which call PIL's ``convert("RGB")``):
- L, LA, P, PA, RGBA, CMYK, YCbCr: PIL's ``convert("RGB")``; alpha is dropped, not composited.
- 16-bit and 32-bit grey (I;16, I;16B, I, F): scaled to 8 bits (I;16: value / 257, rounded;
  I and F: clipped to 0..65535 then the same), then replicated to three channels.
- EXIF orientation is not applied (no peer applies it).
- Truncated or corrupt files raise ImageError naming the file; PIL's LOAD_TRUNCATED_IMAGES stays off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from diffbench.errors import ImageError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
_WIDE = ("I;16", "I;16B", "I;16L", "I", "F")


def to_rgb(img: Image.Image) -> np.ndarray:
    """A loaded PIL image → uint8 H×W×3 by the rules above."""
    if img.mode in _WIDE:
        arr = np.asarray(img, dtype=np.float64)
        grey = np.clip(np.rint(np.clip(arr, 0, 65535) / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.array(img, dtype=np.uint8)


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file fully to uint8 H×W×3, or raise ImageError naming it."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            arr = to_rgb(img)
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: image file disappeared while reading") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: corrupt or truncated image ({exc}); re-export the file or "
                         "remove it from the folder") from exc
    if arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape:
        raise ImageError(f"{path}: decoded to shape {arr.shape}, expected H×W×3")
    return arr
