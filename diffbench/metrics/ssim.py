"""SSIM (structural similarity), batched, in float64, as the try-on evaluation scripts compute it.

The index is Wang et al.'s with a Gaussian window (σ = 1.5, truncated at 3.5σ: 11 taps), constants
``C1 = (k1·L)²`` and ``C2 = (k2·L)²`` for a data range ``L``, and population (not sample)
covariances. Two border conventions exist in the libraries the published tables used:

- ``valid``: the SSIM map is averaged over the pixels whose whole window lies inside the image.
  scikit-image (``gaussian_weights=True``) and torchmetrics up to 1.4.1 do this (torchmetrics pads
  with reflection and then crops the padding off again).
- ``reflect``: the input is reflect-padded and the full map is averaged. torchmetrics from 1.4.2
  on (PR #2721) does this; its numbers differ from the older ones in the third decimal on small
  images and in the fifth on 1024×768 ones.

Sums are taken in float64: in float32, ``E[x²] − E[x]²`` loses about 1e-5 of the index on noisy
images (torchmetrics' own float32 result is that far from the exact value). The Gaussian is
separable; on the CPU the image is processed in horizontal strips that stay in cache, on a GPU in
one piece. Grayscale conversion is PIL's ``convert('L')`` bit for bit (ITU-R 601-2 luma in 16-bit
fixed point), which HR-VITON's script applies before scikit-image.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from diffbench.errors import MetricInputError, shown
from diffbench.metrics.args import PAIRED_PREP_ARGS, Arg
from diffbench.metrics.spec import MetricSpec, Needs, Output

if TYPE_CHECKING:  # torch is imported by the functions that run: the spec alone stays light
    import torch

BORDERS = ("valid", "reflect")
CPU_STRIP_ROWS = 32  # measured: 16–48 output rows keep the five float64 maps in cache


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> list[float]:
    """The normalised 1-D Gaussian of ``2·int(truncate·σ + 0.5) + 1`` taps (scipy's/torchmetrics')."""
    radius = int(truncate * sigma + 0.5)
    taps = [math.exp(-0.5 * (d / sigma) ** 2) for d in range(-radius, radius + 1)]
    total = math.fsum(taps)
    return [t / total for t in taps]


def pil_gray(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 N×3×H×W → uint8 N×1×H×W exactly as PIL's ``convert('L')`` (L = R·299/1000 + …)."""
    import torch

    if rgb.dtype != torch.uint8 or rgb.ndim != 4 or rgb.shape[1] != 3:
        raise MetricInputError(f"grayscale conversion needs uint8 N×3×H×W, got {rgb.dtype} "
                               f"{tuple(rgb.shape)}")
    x = rgb.to(torch.int32)
    luma = (x[:, 0] * 19595 + x[:, 1] * 38470 + x[:, 2] * 7471 + 0x8000) >> 16
    return luma.to(torch.uint8)[:, None]


def _blur(x: torch.Tensor, window: list[float], dim: int, n_out: int) -> torch.Tensor:
    """'valid' correlation with a symmetric window along `dim` (half the multiplications)."""
    k = len(window)
    r = k // 2
    out = x.narrow(dim, r, n_out) * window[r]
    for i in range(r):
        out.add_(x.narrow(dim, i, n_out) + x.narrow(dim, k - 1 - i, n_out), alpha=window[i])
    return out


def _ssim_sum(x: torch.Tensor, y: torch.Tensor, window: list[float], c1: float,
              c2: float) -> torch.Tensor:
    """Per-image sum of the valid SSIM map of float64 N×C×H×W inputs."""
    import torch

    k = len(window)
    h_out, w_out = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    maps = torch.stack((x, y, x * x, y * y, x * y))
    maps = _blur(_blur(maps, window, 3, h_out), window, 4, w_out)
    mx, my, sxx, syy, sxy = maps.unbind(0)
    mxy, mx2, my2 = mx * my, mx * mx, my * my
    # clamps as torchmetrics (≥ 1.0): rounding can make a flat window's variance slightly < 0
    var = (sxx - mx2).clamp_(min=0.0) + (syy - my2).clamp_(min=0.0)
    index = ((2 * mxy + c1) * (2 * (sxy - mxy) + c2)) / ((mx2 + my2 + c1) * (var + c2))
    return index.sum(dim=(1, 2, 3))


def ssim_batch(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, sigma: float = 1.5,
               k1: float = 0.01, k2: float = 0.03, border: str = "valid",
               strip_rows: int | None = None) -> torch.Tensor:
    """SSIM of each image pair (float64, length N), averaged over channels and pixels.

    `x`, `y`: N×C×H×W tensors of equal shape in units where the data range is `data_range`
    (uint8 tensors are taken as 0..255 values). `strip_rows` bounds the rows processed at once
    (default: strips of 32 on the CPU, spread over threads; whole batches on a GPU); it never
    changes the result beyond float64 rounding.
    """
    import torch
    import torch.nn.functional as F

    if x.shape != y.shape or x.ndim != 4:
        raise MetricInputError(f"ssim: images must have equal N×C×H×W shapes, got "
                               f"{tuple(x.shape)} and {tuple(y.shape)}")
    if border not in BORDERS:
        raise MetricInputError(f"ssim: border {shown(border)} is not one of {', '.join(BORDERS)}")
    window = gaussian_window(sigma)
    k = len(window)
    if border == "valid" and min(x.shape[-2:]) < k:
        raise MetricInputError(f"ssim: images of {x.shape[-2]}×{x.shape[-1]} are smaller than the "
                               f"{k}×{k} window")
    x64, y64 = x.to(torch.float64), y.to(torch.float64)
    if border == "reflect":
        r = k // 2
        if min(x.shape[-2:]) <= r:
            raise MetricInputError(f"ssim: images of {x.shape[-2]}×{x.shape[-1]} are too small "
                                   "to reflect-pad")
        x64 = F.pad(x64, (r, r, r, r), mode="reflect")
        y64 = F.pad(y64, (r, r, r, r), mode="reflect")
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    h_out = x64.shape[-2] - k + 1
    n_pix = x.shape[1] * h_out * (x64.shape[-1] - k + 1)
    if x.device.type != "cpu" and not strip_rows:
        return _ssim_sum(x64, y64, window, c1, c2) / n_pix
    rows = strip_rows or CPU_STRIP_ROWS
    jobs = [(i, r0, min(rows, h_out - r0)) for i in range(x.shape[0])
            for r0 in range(0, h_out, rows)]

    def strip(job: tuple[int, int, int]) -> float:
        i, r0, n = job
        sl = (slice(i, i + 1), slice(None), slice(r0, r0 + n + k - 1))
        return float(_ssim_sum(x64[sl], y64[sl], window, c1, c2)[0])

    # Strips are small: one thread per strip, strips spread over the cores (OpenMP inside such
    # small ops costs more than it gains, badly so on a loaded machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max(1, threads)) as pool:
            sums = list(pool.map(strip, jobs))
    finally:
        torch.set_num_threads(threads)
    totals = torch.zeros(x.shape[0], dtype=torch.float64)
    for (i, _, _), value in zip(jobs, sums, strict=True):
        totals[i] += value
    return totals / n_pix


def ssim_values(gt: torch.Tensor, pred: torch.Tensor, *, color: str, data_range: float,
                sigma: float, k1: float, k2: float, border: str) -> torch.Tensor:
    """Per-pair SSIM (float64) of uint8 N×3×H×W batches: RGB in units of ``data_range``/255, or
    PIL's luma (``color: gray``)."""
    if color == "gray":
        gt, pred = pil_gray(gt), pil_gray(pred)
    unit = float(data_range) / 255.0
    return ssim_batch(pred.double() * unit, gt.double() * unit, data_range=float(data_range),
                      sigma=float(sigma), k1=float(k1), k2=float(k2), border=border)


SSIM = MetricSpec(
    name="ssim", family="paired",
    summary="Structural similarity of each generated image with its ground truth (higher is "
            "better)",
    outputs=(Output("ssim", "SSIM", True, 4, {"abs": 0.005}),),
    compute=ssim_values, needs=Needs(against="ground_truth"),
    args={
        "color": Arg("str", "rgb", "rgb: RGB in [0, 1]; gray: PIL 'L' luma in [0, 255]",
                     choices=("rgb", "gray")),
        "data_range": Arg("float", 1.0, "the data range L of C1 = (k1 L)², C2 = (k2 L)²",
                          minimum=0),
        "sigma": Arg("float", 1.5, "σ of the Gaussian window (11 taps at 1.5)", minimum=0),
        "k1": Arg("float", 0.01, "constant k1", minimum=0),
        "k2": Arg("float", 0.03, "constant k2", minimum=0),
        "border": Arg("str", "valid", "valid: windows inside the image (scikit-image, "
                      "torchmetrics <= 1.4.1); reflect: reflect-padded (torchmetrics >= 1.4.2)",
                      choices=BORDERS),
        **PAIRED_PREP_ARGS,
    })
