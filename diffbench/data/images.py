"""Decoding one image file to RGB uint8, with a clear error for anything unusable.

Rules (the same as torch-fidelity and clean-fid, which call PIL's ``convert("RGB")``):
- L, LA, P, PA, RGBA, CMYK, YCbCr: PIL's ``convert("RGB")``; alpha is dropped, not composited.
- 16-bit and 32-bit grey (I;16, I;16B, I, F): scaled to 8 bits (I;16: value / 257, rounded;
  I and F: clipped to 0..65535 then the same), then replicated to three channels.
- EXIF orientation is not applied (no peer applies it).
- Truncated or corrupt files raise ImageError naming the file; PIL's LOAD_TRUNCATED_IMAGES stays off.
- An image of more than `max_pixels()` pixels is refused before it is decoded (a "decompression
  bomb": a small file that decodes to gigabytes). The default is PIL's own hard limit,
  178,956,970 pixels (2 × ``Image.MAX_IMAGE_PIXELS``); ``DIFFBENCH_MAX_PIXELS`` (or the commands'
  ``--max-pixels``, which sets it for the loader workers too) changes it.
- An unreadable file (permissions) is an ImageError saying so, not "corrupt".
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from diffbench.errors import ConfigError, ImageError, shown

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
_WIDE = ("I;16", "I;16B", "I;16L", "I", "F")
MAX_PIXELS_ENV = "DIFFBENCH_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 178_956_970  # PIL's DecompressionBombError threshold, 2 × 89,478,485


def max_pixels() -> int:
    """The largest image (width × height) diffbench decodes: $DIFFBENCH_MAX_PIXELS or the default."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{MAX_PIXELS_ENV}={shown(raw)}: expected a positive number of pixels, e.g. "
                          f"{DEFAULT_MAX_PIXELS}")
    return value


def set_max_pixels(limit: int) -> None:
    """Set the pixel limit for this process and the loader workers it starts (environment)."""
    if int(limit) < 1:
        raise ConfigError(f"--max-pixels {limit}: expected a positive number of pixels")
    os.environ[MAX_PIXELS_ENV] = str(int(limit))


def _too_large(path: Path, pixels: str, limit: int) -> ImageError:
    return ImageError(f"{path}: {pixels} pixels, more than the limit of {limit:,} (a decompression "
                      "bomb?); if the file is trusted, raise the limit with --max-pixels N or "
                      f"{MAX_PIXELS_ENV}=N")


def _open(path: Path, limit: int) -> Image.Image:
    """Open (header only) and refuse images above `limit` pixels before decoding them."""
    if Image.MAX_IMAGE_PIXELS is not None and limit > 2 * Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit // 2 + 1  # PIL refuses above twice its own limit
    with warnings.catch_warnings():  # PIL's bomb warning: the check below decides
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except Image.DecompressionBombError as exc:
            size = re.search(r"\((\d+) pixels\)", str(exc))  # PIL names the size, not w×h
            text = f"{int(size[1]):,}" if size else f"over {2 * Image.MAX_IMAGE_PIXELS:,}"
            raise _too_large(path, text, limit) from exc
    if img.width * img.height > limit:
        img.close()
        raise _too_large(path, f"{img.width}×{img.height} = {img.width * img.height:,}", limit)
    return img


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
    limit = max_pixels()
    try:
        with _open(path, limit) as img:
            img.load()
            arr = to_rgb(img)
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: image file disappeared while reading") from exc
    except PermissionError as exc:
        raise ImageError(f"{path}: permission denied (cannot read the image); make it readable "
                         "(chmod a+r) or remove it from the folder") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: corrupt or truncated image ({exc}); re-export the file or "
                         "remove it from the folder") from exc
    if arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape:
        raise ImageError(f"{path}: decoded to shape {arr.shape}, expected H×W×3")
    return arr
