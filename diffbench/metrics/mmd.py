"""CMMD (Jayasumana et al., CVPR 2024): MMD with a Gaussian RBF kernel on CLIP embeddings.

As google-research/cmmd ``distance.py`` defines it: ``gamma = 1 / (2 sigma²)``, the squared
distances formed as ``-2 x·yᵀ + ‖x‖² + ‖y‖²``, ``k_xx``, ``k_yy`` and ``k_xy`` the means of
``exp(-gamma d²)`` over all pairs (the diagonal included: the biased, minimum-variance
estimator of Gretton et al. 2012, Eq. 5), and ``scale · (k_xx + k_yy - 2 k_xy)``. The reference
computes in JAX float32 with the whole n×n matrix in memory; here the kernel sums run over row
blocks in float64 (memory flat in N, rounding far below the reference's own float32 rounding).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from diffbench.errors import MetricInputError

if TYPE_CHECKING:  # torch is imported where the math runs: listing metrics stays light
    import torch


def _embeddings(x: object, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or 0 in arr.shape:
        raise MetricInputError(f"{what} must be a non-empty 2-D array (rows, dim); got shape "
                               f"{arr.shape}")
    if not np.isfinite(arr).all():
        raise MetricInputError(f"{what} contains NaN/inf values; check the embeddings")
    return arr


def _kernel_mean(x: torch.Tensor, y: torch.Tensor, gamma: float, block: int) -> float:
    """Mean of exp(-gamma ‖xi - yj‖²) over all pairs, summed block by block in float64."""
    import torch

    nx, ny = (x * x).sum(1), (y * y).sum(1)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for i in range(0, len(x), block):
        for j in range(0, len(y), block):
            d = x[i:i + block] @ y[j:j + block].T
            d.mul_(-2).add_(nx[i:i + block, None]).add_(ny[None, j:j + block])
            total += torch.exp(d.mul_(-gamma)).sum()
    return float(total) / (len(x) * len(y))


def cmmd(x: object, y: object, sigma: float = 10.0, scale: float = 1000.0,
         block_size: int = 4096, device: str | torch.device = "cpu") -> float:
    """CMMD of embedding sets `x` and `y` (rows; normalise them first, as the reference does)."""
    a, b = _embeddings(x, "x"), _embeddings(y, "y")
    if a.shape[1] != b.shape[1]:
        raise MetricInputError(f"x has dim {a.shape[1]} but y has dim {b.shape[1]}")
    if sigma <= 0 or block_size < 1:
        raise MetricInputError(f"cmmd needs sigma > 0 and block_size >= 1 (got {sigma}, "
                               f"{block_size})")
    import torch

    gamma = 1.0 / (2.0 * float(sigma) ** 2)
    tx = torch.as_tensor(a, device=device)
    ty = torch.as_tensor(b, device=device)
    with torch.no_grad():
        k_xx = _kernel_mean(tx, tx, gamma, block_size)
        k_yy = _kernel_mean(ty, ty, gamma, block_size)
        k_xy = _kernel_mean(tx, ty, gamma, block_size)
    return float(scale) * (k_xx + k_yy - 2.0 * k_xy)


def l2_normalise(x: object) -> np.ndarray:
    """Rows divided by their Euclidean norm (float64), as cmmd normalises CLIP embeddings."""
    arr = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if (norms == 0).any():
        raise MetricInputError("an embedding is all zeros and cannot be L2-normalised")
    return arr / norms
