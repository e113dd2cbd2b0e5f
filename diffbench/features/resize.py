"""Resize modes before Inception; each is part of the extractor fingerprint.

- ``tf-bilinear``: TensorFlow 1.x ``resize_bilinear(align_corners=False)`` to 299 on float32
  values in [0, 255] — what the ADM evaluator's graph and torch-fidelity do. Source coordinate
  ``out_index · (in / out)`` (no half-pixel offset), neighbours clamped at the border, and TF's
  order of operations (interpolate along x on both rows, then along y), so CPU results are
  bit-identical to torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x``.
- ``clean``: clean-fid's PIL bicubic resize of each channel as a float32 ('F') image, without
  re-quantisation, clipped to [0, 255]. Runs per image on the CPU (in loader workers).

Both are followed by ``(x - 128) / 128``.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

MODES = ("tf-bilinear", "clean")


def _axis(in_size: int, out_size: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    coord = torch.arange(out_size, dtype=torch.float32) * scale
    low = torch.floor(coord)
    lerp = (coord - low).to(device)
    low_i = low.long().clamp(max=in_size - 1)
    high_i = (low_i + 1).clamp(max=in_size - 1)
    return low_i.to(device), high_i.to(device), lerp


def tf1_bilinear(x: torch.Tensor, size: tuple[int, int] = (299, 299)) -> torch.Tensor:
    """TF1 ``resize_bilinear(align_corners=False)`` of float N×C×H×W to `size`."""
    if not torch.is_floating_point(x) or x.dim() != 4:
        raise ValueError("tf1_bilinear expects a float N×C×H×W tensor")
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    y0, y1, ly = _axis(h, size[0], x.device)
    x0, x1, lx = _axis(w, size[1], x.device)
    top = x.index_select(2, y0)
    bottom = x.index_select(2, y1)
    lx = lx.to(x.dtype)
    ly = ly.to(x.dtype).view(-1, 1)
    tl, tr = top.index_select(3, x0), top.index_select(3, x1)
    bl, br = bottom.index_select(3, x0), bottom.index_select(3, x1)
    top_row = tl + (tr - tl) * lx
    bottom_row = bl + (br - bl) * lx
    return top_row + (bottom_row - top_row) * ly


def clean_resize(image: np.ndarray, size: tuple[int, int] = (299, 299)) -> np.ndarray:
    """clean-fid's resize: PIL bicubic per channel in float32, clipped to [0, 255]; H×W×3 float32."""
    if image.shape[:2] == tuple(size):
        return image.astype(np.float32)
    channels = [np.asarray(Image.fromarray(image[..., c].astype(np.float32), mode="F")
                           .resize((size[1], size[0]), resample=Image.BICUBIC), dtype=np.float32)
                for c in range(image.shape[2])]
    return np.clip(np.stack(channels, axis=-1), 0, 255)


def normalise(x: torch.Tensor) -> torch.Tensor:
    """[0, 255] → the Inception input range, (x - 128) / 128."""
    return (x - 128) / 128
