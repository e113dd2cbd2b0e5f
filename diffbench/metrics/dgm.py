"""dgm-eval's metrics of a generated set against a reference set (Stein et al., NeurIPS 2023).

The metrics that layer6ai-labs/dgm-eval reports, implemented here on feature rows of any
extractor, numpy/torch in, numbers out; the tests (`tests/test_dgm_eval.py`) check each against
`tests/_dgm_eval.py`, an independent plain implementation of dgm-eval's protocol, on the same
rows. Where dgm-eval draws random numbers from an unseeded generator, these functions take a
``seed`` and draw the same way from a generator seeded with it (the same generator, seeded
alike, gives dgm-eval's draws):

- `fd_eff`: FD with ``Tr sqrt(S1 S2)`` as the sum of the real parts of the square roots of the
  eigenvalues of ``S1 S2`` (``compute_efficient_FD_with_reps``);
- `fd_infinity`: FD of the reference against 15 subsets of the generated rows of growing size
  (``np.random.default_rng``), extrapolated linearly in 1/N to 1/N = 0 (``compute_FD_infinity``);
- `kd`: polynomial-kernel unbiased MMD² over 100 subsets of min(1000, N) rows drawn from numpy's
  RandomState, reference rows first (``compute_mmd``): torch-fidelity's KID estimator
  (`diffbench.metrics.functional.kid`) with dgm-eval's subset size;
- `vendi`: exp of the entropy of the eigenvalues of ``K/n``, ``K`` the linear kernel of the
  L2-normalised rows (``compute_vendi_score``), from the d×d matrix ``XᵀX/n`` (same non-zero
  eigenvalues) when n > d, so memory stays d²; per class with labels
  (``compute_per_class_vendi_scores``);
- `authpct`: % of generated rows whose nearest reference row has its own nearest reference
  neighbour closer than the generated row (``compute_authpct``), blocked;
- `sw_approx`: the approximate sliced Wasserstein-2 distance of ``sw.py``, from each side's mean
  and covariance (``m2 = Tr S (n-1)/n``).

Nearest neighbours are found block by block in float64 (`nearest`), so memory grows with the
block, not with N².
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from diffbench.errors import MetricInputError
from diffbench.metrics import functional as F
from diffbench.metrics.rows import feature_pair, feature_rows

if TYPE_CHECKING:  # torch is imported where the math runs
    import torch

BLOCK = 4096  # rows per side of one block of distances (128 MB in float64)
DGM_SEED = 13579  # dgm-eval's --seed: the recorded seed of the draws it leaves unseeded


def rows64(x: object, what: str) -> np.ndarray:
    """`x` as a finite non-empty 2-D float64 array (one line naming `what` otherwise)."""
    return feature_rows(x, what, np.float64)


def _pair(a: object, b: object, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    return feature_pair(a, b, names, np.float64)


def _sq_dist(x: torch.Tensor, xx: torch.Tensor, y: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
    d = x @ y.T
    return d.mul_(-2).add_(xx[:, None]).add_(yy[None, :]).clamp_min_(0)


def nearest(query: object, pool: object, *, exclude_self: bool = False, block: int = BLOCK,
            device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Distance to and index of each query row's nearest pool row (float64, blocked).

    With ``exclude_self`` the query is the pool and each row's own entry is skipped.
    """
    import torch

    q = torch.as_tensor(rows64(query, "query rows"), device=device)
    p = torch.as_tensor(rows64(pool, "pool rows"), device=device)
    if exclude_self and len(p) < 2:
        raise MetricInputError("a nearest neighbour other than itself needs at least 2 rows")
    qq, pp = (q * q).sum(1), (p * p).sum(1)
    best = torch.full((len(q),), float("inf"), dtype=torch.float64, device=device)
    arg = torch.zeros(len(q), dtype=torch.int64, device=device)
    with torch.no_grad():
        for i in range(0, len(q), block):
            for j in range(0, len(p), block):
                d = _sq_dist(q[i:i + block], qq[i:i + block], p[j:j + block], pp[j:j + block])
                if exclude_self and i == j:
                    d.fill_diagonal_(float("inf"))
                m, a = d.min(dim=1)
                better = m < best[i:i + block]  # strict: the first minimum wins, as argmin
                best[i:i + block] = torch.where(better, m, best[i:i + block])
                arg[i:i + block] = torch.where(better, a + j, arg[i:i + block])
    return best.sqrt().cpu().numpy(), arg.cpu().numpy()


def _moments(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return rows.mean(0), np.atleast_2d(np.cov(rows, rowvar=False))


def fd_eff(mu1: object, sigma1: object, mu2: object, sigma2: object) -> float:
    """FD with Tr sqrt(S1 S2) = Σ Re √λ over the eigenvalues λ of S1 S2 (float64)."""
    import scipy.linalg

    m1, s1 = np.asarray(mu1, np.float64), np.asarray(sigma1, np.float64)
    m2, s2 = np.asarray(mu2, np.float64), np.asarray(sigma2, np.float64)
    if m1.shape != m2.shape or s1.shape != s2.shape or s1.shape != (len(m1), len(m1)):
        raise MetricInputError(f"fd_eff: statistics of different shapes ({m1.shape}, {s1.shape})"
                               f" and ({m2.shape}, {s2.shape})")
    # complex square roots: a (rounding-)negative eigenvalue adds nothing, as in dgm-eval
    ev = scipy.linalg.eigvals(s1 @ s2).astype(np.complex128)
    tr_sqrt = float(np.sqrt(ev).real.sum())
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


def fd_infinity_sizes(n: int, num_points: int = 15) -> np.ndarray:
    """dgm-eval's subset sizes: num_points from min(5000, max(n // 10, 2)) to n (int32)."""
    smallest = min(5000, max(n // 10, 2))  # a tenth of the set, at least 2, at most 5000
    return np.linspace(smallest, n, num_points).astype(np.int32)


def fd_infinity(real: object, fake: object, *, num_points: int = 15,
                seed: int = DGM_SEED) -> tuple[float, dict]:
    """FD∞: the intercept at 1/N = 0 of the least-squares line through (1/N, FD_N).

    Returns the value and details (the sizes and FD_N behind the fit). Subsets are drawn without
    replacement from ``np.random.default_rng(seed)``, one per size, in increasing size.
    """
    r, f = _pair(real, fake, ("real rows", "fake rows"))
    if len(f) < 3 or num_points < 2:
        raise MetricInputError(f"fd_infinity needs at least 3 generated rows and num_points >= 2 "
                               f"(got {len(f)}, {num_points})")
    mu1, sigma1 = _moments(r)
    sizes = fd_infinity_sizes(len(f), num_points)
    rng = np.random.default_rng(seed)
    fds = []
    for size in sizes:
        mu2, sigma2 = _moments(f[rng.choice(len(f), int(size), replace=False)])
        fds.append(F.frechet_distance(mu1, sigma1, mu2, sigma2))
    x, y = 1.0 / sizes.astype(np.float64), np.asarray(fds)
    xc = x - x.mean()
    slope = float(xc @ (y - y.mean()) / (xc @ xc)) if xc @ xc > 0 else 0.0
    return float(y.mean() - slope * x.mean()), {"sizes": sizes.tolist(), "fd_n": fds,
                                                "slope": slope, "seed": seed}


def kd(real: object, fake: object, *, subsets: int = 100, subset_size: int = 1000,
       seed: int = DGM_SEED) -> tuple[float, float]:
    """dgm-eval's KD: (mean, population std) of unbiased cubic-kernel MMD² over subsets."""
    r, f = _pair(real, fake, ("real rows", "fake rows"))
    size = min(subset_size, len(r), len(f))
    if size < 2:
        raise MetricInputError(f"kd needs at least 2 rows per side (real: {len(r)}, fake: "
                               f"{len(f)})")
    return F.kid(r, f, subsets=subsets, subset_size=size, seed=seed)


def _entropy_exp(w: np.ndarray) -> float:
    p = w[w > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def vendi(rows: object) -> float:
    """Vendi score (q = 1) of the linear kernel on L2-normalised rows."""
    x = rows64(rows, "rows")
    norms = np.sqrt((x * x).sum(1))
    x = x / np.where(norms == 0, 1.0, norms)[:, None]  # sklearn's normalize keeps zero rows
    n, d = x.shape
    # K/n = X Xᵀ/n and Xᵀ X/n share their non-zero eigenvalues: take the smaller matrix
    gram = (x.T @ x) / n if n > d else (x @ x.T) / n
    return _entropy_exp(np.linalg.eigvalsh(gram))


def vendi_per_class(rows: object, labels: object) -> np.ndarray:
    """Vendi score of each class 0..C-1 (C: the number of distinct labels), as dgm-eval."""
    x, lab = rows64(rows, "rows"), np.asarray(labels)
    if lab.shape != (len(x),):
        raise MetricInputError(f"labels must hold one label per row ({len(x)}), got shape "
                               f"{lab.shape}")
    out = np.zeros(len(np.unique(lab)))
    for c in range(len(out)):
        members = x[lab == c]
        if len(members) == 0:
            raise MetricInputError(f"vendi per class: no rows of class {c}; dgm-eval numbers "
                                   f"classes 0..{len(out) - 1}")
        out[c] = vendi(members)
    return out


def authpct(real: object, fake: object, *, block: int = BLOCK, device: str = "cpu") -> float:
    """% of fakes whose nearest real row is closer to another real row than to the fake."""
    r, f = _pair(real, fake, ("real rows", "fake rows"))
    real_nn, _ = nearest(r, r, exclude_self=True, block=block, device=device)
    fake_nn, idx = nearest(f, r, block=block, device=device)
    return 100.0 * float(np.count_nonzero(real_nn[idx] < fake_nn)) / len(f)


def sw_approx(mu1: object, sigma1: object, n1: int, mu2: object, sigma2: object,
              n2: int) -> float:
    """Approximate sliced W2 (Nadjahi et al. 2021, dgm-eval sw.py) from means and covariances."""
    m1, m2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    d = len(m1)
    diff = m1 - m2
    m2x = float(np.trace(np.asarray(sigma1, np.float64))) * (n1 - 1) / n1 / d
    m2y = float(np.trace(np.asarray(sigma2, np.float64))) * (n2 - 1) / n2 / d
    return float(np.sqrt(diff @ diff / d + (np.sqrt(m2x) - np.sqrt(m2y)) ** 2))
