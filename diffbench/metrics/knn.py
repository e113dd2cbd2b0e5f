"""Precision, recall, density and coverage (Naeem et al., ICML 2020) as ``prdc.compute_prdc``.

The ``prdc`` package (clovaai) builds three full distance matrices with scikit-learn; at ADM
scale (10k reference × 50k generated rows) the 50k × 50k one alone takes 10 GB. Here the same
numbers come from blocks: each block of squared distances is formed as scikit-learn's
``euclidean_distances`` forms it (``-2 x·yᵀ + ‖x‖² + ‖y‖²`` in float64, rounded to float32 when
both inputs are float32, clipped at 0, self-distances set to 0, square root in that dtype), so
every comparison below sees the same distance value ``prdc`` sees:

- radius of a point: the largest of its k+1 smallest distances to its own set (self included);
- precision: share of generated rows within some reference radius (strict ``<``);
- recall: share of reference rows within some generated radius;
- density: (1/k) · mean over generated rows of the number of reference balls holding them;
- coverage: share of reference rows whose nearest generated row lies within their own radius.

Only the k+1 smallest distances per row, per-row counts and minima are kept between blocks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from diffbench.errors import MetricInputError
from diffbench.log import progress
from diffbench.metrics.rows import feature_pair

if TYPE_CHECKING:  # torch is imported where the math runs: listing metrics stays light
    import torch


def _prepared(real_features: object, fake_features: object, nearest_k: int, what: str,
              device: str | torch.device, radii_of_fakes: bool = True,
              ) -> tuple[torch.Tensor, torch.Tensor, _Distances]:
    """Both sets checked (`feature_pair`) as float64 tensors on `device`, and the distances
    `prdc` sees: float32 when both inputs are float32 (scikit-learn's rule), else float64.
    Each set that gets k-NN radii needs more than `nearest_k` rows."""
    import torch

    r, f = feature_pair(real_features, fake_features, ("real_features", "fake_features"))
    if min(len(r), len(f) if radii_of_fakes else len(r)) < nearest_k + 1:
        sets = "per set" if radii_of_fakes else "in the reference set"
        raise MetricInputError(f"{what} with nearest_k={nearest_k} needs at least "
                               f"{nearest_k + 1} rows {sets} (real: {len(r)}, fake: {len(f)})")
    single = r.dtype == np.float32 and f.dtype == np.float32
    return (torch.as_tensor(r, device=device).to(torch.float64),
            torch.as_tensor(f, device=device).to(torch.float64),
            _Distances(torch.float32 if single else torch.float64))


class _Distances:
    """scikit-learn's euclidean distances of row blocks, in its arithmetic (see the module)."""

    def __init__(self, out_dtype: torch.dtype) -> None:
        self.out_dtype = out_dtype

    def __call__(self, x: torch.Tensor, xx: torch.Tensor, y: torch.Tensor, yy: torch.Tensor,
                 same: bool = False) -> torch.Tensor:
        d = x @ y.T
        d.mul_(-2).add_(xx[:, None]).add_(yy[None, :])
        d = d.to(self.out_dtype).clamp_min_(0)
        if same:  # a diagonal block of one set against itself
            d.fill_diagonal_(0)
        return d.sqrt_()


def _norms(x: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(1)


def _radii(x: torch.Tensor, k: int, block: int, dist: _Distances, what: str) -> torch.Tensor:
    """Distance of each row to its k-th neighbour in its own set (k+1-th with itself)."""
    import torch

    nx = _norms(x)
    out = []
    for i in progress(range(0, len(x), block), desc=f"PRDC {what} radii", unit="blocks",
                      detail=True):
        rows, best = x[i:i + block], None
        for j in range(0, len(x), block):
            d = dist(rows, nx[i:i + block], x[j:j + block], nx[j:j + block], same=i == j)
            best = d if best is None else torch.cat([best, d], dim=1)
            best = torch.topk(best, min(k + 1, best.shape[1]), dim=1, largest=False).values
        out.append(best.max(dim=1).values)
    return torch.cat(out)


def prdc(real_features: object, fake_features: object, nearest_k: int = 5,
         block_size: int = 4096, device: str | torch.device = "cpu") -> dict[str, float]:
    """Precision, recall, density and coverage of fake rows against real ones (``prdc`` 0.2)."""
    import torch

    if nearest_k < 1 or block_size < 1:
        raise MetricInputError(f"prdc needs nearest_k >= 1 and block_size >= 1 (got "
                               f"{nearest_k}, {block_size})")
    real, fake, dist = _prepared(real_features, fake_features, nearest_k, "prdc", device)
    k = int(nearest_k)
    with torch.no_grad():
        r_real = _radii(real, k, block_size, dist, "reference")
        r_fake = _radii(fake, k, block_size, dist, "generated")
        counts, real_in, nearest = _cross(real, r_real, fake, r_fake, block_size, dist)
    n_fake = len(fake)
    return {"precision": int((counts > 0).sum()) / n_fake,
            "recall": int(real_in.sum()) / len(real),
            "density": (1.0 / float(k)) * (int(counts.sum()) / n_fake),
            "coverage": int((nearest < r_real).sum()) / len(real)}


def _cross(real: torch.Tensor, r_real: torch.Tensor, fake: torch.Tensor, r_fake: torch.Tensor,
           block: int, dist: _Distances) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per generated row: reference balls holding it; per reference row: inside a generated
    ball, and its distance to the nearest generated row."""
    import torch

    counts = torch.zeros(len(fake), dtype=torch.int64, device=real.device)
    real_in = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    nearest = torch.full((len(real),), float("inf"), dtype=r_real.dtype, device=real.device)
    nr, nf = _norms(real), _norms(fake)
    for i in progress(range(0, len(real), block), desc="PRDC cross", unit="blocks", detail=True):
        rows, rr = real[i:i + block], r_real[i:i + block]
        for j in range(0, len(fake), block):
            d = dist(rows, nr[i:i + block], fake[j:j + block], nf[j:j + block])
            counts[j:j + block] += (d < rr[:, None]).sum(dim=0)
            real_in[i:i + block] |= (d < r_fake[None, j:j + block]).any(dim=1)
            nearest[i:i + block] = torch.minimum(nearest[i:i + block], d.min(dim=1).values)
    return counts, real_in, nearest


def realism(real_features: object, fake_features: object, nearest_k: int = 5,
            block_size: int = 4096, device: str | torch.device = "cpu") -> np.ndarray:
    """Realism score of each fake row (Kynkäänniemi et al. 2019) as dgm-eval's ``compute_prdc``.

    max over the reference rows whose k-NN radius is below the median radius of
    radius / distance to the fake (inf for a fake equal to such a row), with the distances and
    radii `prdc` uses; returned in the distances' dtype, in the order of the fake rows.
    """
    import torch

    real, fake, dist = _prepared(real_features, fake_features, nearest_k, "realism", device,
                                 radii_of_fakes=False)
    with torch.no_grad():
        radii = _radii(real, int(nearest_k), block_size, dist, "reference")
        keep = torch.as_tensor(radii.cpu().numpy() < np.median(radii.cpu().numpy()),
                               device=real.device)
        real, radii = real[keep], radii[keep]
        nr, nf = _norms(real), _norms(fake)
        best = torch.full((len(fake),), float("-inf"), dtype=radii.dtype, device=real.device)
        for i in range(0, len(real), block_size):
            for j in range(0, len(fake), block_size):
                d = dist(real[i:i + block_size], nr[i:i + block_size], fake[j:j + block_size],
                         nf[j:j + block_size])
                ratio = (radii[i:i + block_size, None] / d).max(dim=0).values
                best[j:j + block_size] = torch.maximum(best[j:j + block_size], ratio)
    return best.cpu().numpy()
