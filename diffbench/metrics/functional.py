"""Array-in, number-out metric math: FID, KID, Inception Score, precision/recall, PRDC, CMMD.

`prdc` (precision, recall, density, coverage) lives in `diffbench.metrics.knn` and `cmmd` in
`diffbench.metrics.mmd`; both are exposed here.

Each function takes numpy arrays (features or logits) and returns Python floats. Where a
reference library defines a metric, the arithmetic follows it step by step so that the numbers
agree with it (see the docstrings); the tests show the agreement.

Frechet distance. ``Tr sqrt(S1 S2)`` is computed in float64 without ``scipy.linalg.sqrtm``
(whose ``disp`` argument is gone in new SciPy and which broke FID in SciPy 1.11.2-1.12) as
``Tr sqrt(R S2 R)`` with ``R = S1^(1/2)`` from a symmetric eigendecomposition: ``R S2 R`` is
symmetric positive semidefinite and has the eigenvalues of ``S1 S2``, so its eigenvalues are
real. Round-off makes some eigenvalues (of ``S1`` and of ``R S2 R``) tiny and negative, or
makes the inputs slightly asymmetric; these are handled as follows: each covariance is
symmetrised; eigenvalues ``>= -1e-4 * max|eigenvalue|`` are clipped at 0 before the square
root (no complex numbers ever appear); anything more negative, an asymmetry above
``1e-5 * max|S|``, or any NaN/inf raises `MetricInputError`. The value is not clipped at 0:
tiny negative FIDs (about -1e-8) on identical inputs are normal, as in the reference libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from diffbench.errors import MetricInputError, shown
from diffbench.log import progress
from diffbench.metrics.knn import prdc as prdc  # re-exported: the public functional API
from diffbench.metrics.mmd import cmmd as cmmd
from diffbench.metrics.rows import check_finite, feature_pair, feature_rows

if TYPE_CHECKING:
    import torch

_PSD_TOL = 1e-4
_SYM_TOL = 1e-5


# ---------------------------------------------------------------- Frechet distance

def _gaussian(mu: object, sigma: object, which: str) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(mu, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    if m.ndim != 1 or s.shape != (m.shape[0], m.shape[0]):
        raise MetricInputError(f"{which} statistics: mu must be (d,) and sigma (d, d); got "
                               f"{m.shape} and {s.shape}")
    check_finite(m, f"{which} mu")
    check_finite(s, f"{which} sigma")
    scale = float(np.abs(s).max()) if s.size else 0.0
    if scale > 0 and float(np.abs(s - s.T).max()) > _SYM_TOL * scale:
        raise MetricInputError(f"{which} sigma is not symmetric; pass a covariance matrix")
    return m, (s + s.T) / 2


def _clip_eigenvalues(w: np.ndarray, what: str) -> np.ndarray:
    scale = float(np.abs(w).max()) if w.size else 0.0
    if w.size and float(w.min()) < -_PSD_TOL * scale:
        raise MetricInputError(f"{what} has eigenvalue {w.min():.3g} (largest {scale:.3g}); it is "
                               "not a covariance matrix (positive semidefinite)")
    return np.clip(w, 0.0, None)


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr sqrt(S1 S2) for symmetric PSD float64 matrices, via eigh of S1^(1/2) S2 S1^(1/2)."""
    w, v = np.linalg.eigh(sigma1)
    root = (v * np.sqrt(_clip_eigenvalues(w, "first sigma"))) @ v.T
    m = root @ sigma2 @ root
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(_clip_eigenvalues(ev, "second sigma (S1^1/2 S2 S1^1/2)")).sum())


def frechet_distance(mu1: object, sigma1: object, mu2: object, sigma2: object) -> float:
    """Frechet distance ||mu1-mu2||^2 + Tr S1 + Tr S2 - 2 Tr sqrt(S1 S2), in float64."""
    m1, s1 = _gaussian(mu1, sigma1, "first")
    m2, s2 = _gaussian(mu2, sigma2, "second")
    if m1.shape != m2.shape:
        raise MetricInputError(f"statistics have different dims ({m1.shape[0]} vs {m2.shape[0]});"
                               " both must come from the same extractor layer")
    diff = m1 - m2
    tr_covmean = trace_sqrt_product(s1, s2)
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


# ---------------------------------------------------------------- KID

KID_GRAM_ENTRIES = 40_000_000  # kernel entries kept at once by `kid` (160 MB in float32)


def _mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    # Same operations, in the same order and dtype, as torch_fidelity.metric_kid.mmd2.
    m = k_xx.shape[0]
    diag_x, diag_y = np.diagonal(k_xx), np.diagonal(k_yy)
    kt_xx_sum = (k_xx.sum(axis=1) - diag_x).sum()
    kt_yy_sum = (k_yy.sum(axis=1) - diag_y).sum()
    k_xy_sum = k_xy.sum(axis=0).sum()
    value = (kt_xx_sum + kt_yy_sum) / (m * (m - 1))
    value -= 2 * k_xy_sum / (m * m)
    return float(value)


def kid(feats1: object, feats2: object, subsets: int = 100, subset_size: int = 1000,
        seed: int | None = 2020, degree: int = 3, gamma: float | None = None,
        coef0: float = 1.0, dtype: type | None = None) -> tuple[float, float]:
    """KID as torch-fidelity 0.4.0: mean and population std of unbiased MMD^2 over subsets.

    Subsets are drawn as torch-fidelity draws them (one ``RandomState(seed)``; per subset, rows
    of ``feats1`` then rows of ``feats2``, without replacement). Kernels are computed in the
    features' dtype, as torch-fidelity does (float32 for float32 features); pass
    ``dtype=np.float64`` for float64 kernels (a slightly different, more precise number).
    """
    x_all, y_all = feature_pair(feats1, feats2, ("feats1", "feats2"))
    n1, n2 = len(x_all), len(y_all)
    if subset_size < 2 or subsets < 1:
        raise MetricInputError(f"KID needs subsets >= 1 and subset_size >= 2 (got {subsets}, "
                               f"{subset_size})")
    if n1 < subset_size or n2 < subset_size:
        raise MetricInputError(
            f"KID subset_size {subset_size} is larger than the feature sets (feats1: {n1} rows, "
            f"feats2: {n2} rows); generate more images or lower subset_size")
    if dtype is not None:
        x_all, y_all = x_all.astype(dtype), y_all.astype(dtype)
    g = 1.0 / x_all.shape[1] if gamma is None else gamma

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (np.matmul(a, b.T) * g + coef0) ** degree

    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    full = n1 * n1 + n2 * n2 + n1 * n2
    if full <= KID_GRAM_ENTRIES and full < 3 * subsets * subset_size ** 2:
        # Small sets (e.g. 2×500 images, 100 subsets of 500): the kernel of every pair once,
        # then each subset picks its rows and columns. Entries are dot products of the same
        # rows, summed in the same order, but one BLAS call over all rows and one per subset
        # may round them differently (kernel blocking, ISA, threads): the result equals the
        # per-subset path (torch-fidelity's) within float32 rounding, not bit for bit (tested
        # against a derived bound in tests/test_metrics_functional.py).
        g_xx, g_yy, g_xy = kernel(x_all, x_all), kernel(y_all, y_all), kernel(x_all, y_all)
        for i in progress(range(subsets), desc="KID", unit="subsets", detail=True):
            ix = rng.choice(n1, subset_size, replace=False)
            iy = rng.choice(n2, subset_size, replace=False)
            mmds[i] = _mmd2_unbiased(g_xx[np.ix_(ix, ix)], g_xy[np.ix_(ix, iy)],
                                     g_yy[np.ix_(iy, iy)])
        return float(np.mean(mmds)), float(np.std(mmds))
    for i in progress(range(subsets), desc="KID", unit="subsets", detail=True):
        x = x_all[rng.choice(n1, subset_size, replace=False)]
        y = y_all[rng.choice(n2, subset_size, replace=False)]
        mmds[i] = _mmd2_unbiased(kernel(x, x), kernel(x, y), kernel(y, y))
    return float(np.mean(mmds)), float(np.std(mmds))


def kid_cleanfid(feats1: object, feats2: object, subsets: int = 100, subset_size: int = 1000,
                 seed: int | None = 2020) -> tuple[float, float]:
    """KID as cleanfid.fid.kernel_distance, but seeded: (mean, population std over subsets).

    Differences from `kid`: the subset size is ``m = min(n1, n2, subset_size)`` (no error for
    small sets), rows of ``feats2`` are drawn before rows of ``feats1``, the kernel is the fixed
    cubic ``(x.y / d + 1)^3`` written as clean-fid writes it, and clean-fid reports the mean only
    (the std is extra). ``seed=None`` draws from numpy's global RNG exactly as clean-fid does;
    an int seed uses ``RandomState(seed)``, i.e. clean-fid after ``np.random.seed(seed)``.
    """
    f1, f2 = feature_pair(feats1, feats2, ("feats1", "feats2"))
    n = f1.shape[1]
    m = min(len(f1), len(f2), subset_size)
    if m < 2:
        raise MetricInputError(f"KID needs at least 2 rows per set (feats1: {len(f1)}, feats2: "
                               f"{len(f2)}, subset_size: {subset_size})")
    rng = np.random if seed is None else np.random.RandomState(seed)
    total: object = 0
    per_subset = np.zeros(subsets)
    for i in progress(range(subsets), desc="KID", unit="subsets", detail=True):
        x = f2[rng.choice(f2.shape[0], m, replace=False)]
        y = f1[rng.choice(f1.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t = (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
        total += t
        per_subset[i] = float(t) / m
    return float(total / subsets / m), float(np.std(per_subset))


# ---------------------------------------------------------------- Inception Score

def _logits(logits: object, min_rows: int) -> np.ndarray:
    x = feature_rows(logits, "logits")
    if x.shape[0] < min_rows:
        raise MetricInputError(f"Inception Score needs at least {min_rows} rows of logits, got "
                               f"{x.shape[0]}; generate more images or use fewer splits")
    return x


def inception_score(logits: object, splits: int = 10, shuffle_seed: int | None = 2020,
                    split_size: int | None = None) -> tuple[float, float]:
    """Inception Score (mean, population std over splits) from logits (``logits_unbiased``).

    Default: torch-fidelity's definition: rows shuffled with ``RandomState(shuffle_seed)``
    (``None``: no shuffle), float64 softmax, split i = rows ``[i*N//splits, (i+1)*N//splits)``.
    With ``split_size`` set: the ADM evaluator's definition instead (see `inception_score_adm`;
    ``splits`` and ``shuffle_seed`` are then not used); ADM reports only the mean.
    """
    if split_size is not None:
        return _inception_score_adm(logits, split_size)
    if splits < 1:
        raise MetricInputError(f"Inception Score splits must be >= 1, got {splits}")
    x = _logits(logits, splits)
    n = x.shape[0]
    if shuffle_seed is not None:
        x = x[np.random.RandomState(shuffle_seed).permutation(n)]
    x = x.astype(np.float64)
    shifted = x - x.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        rows = slice(i * n // splits, (i + 1) * n // splits)
        q = p[rows].mean(axis=0, keepdims=True)
        kl = (p[rows] * (log_p[rows] - np.log(q))).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def _inception_score_adm(logits: object, split_size: int) -> tuple[float, float]:
    if split_size < 1:
        raise MetricInputError(f"Inception Score split_size must be >= 1, got {split_size}")
    x = _logits(logits, 1).astype(np.float32)
    shifted = x - x.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    preds = e / s
    # ADM takes np.log(preds); log-softmax equals it where preds > 0 and avoids 0 * log(0) = NaN.
    log_preds = shifted - np.log(s)
    scores = []
    for i in range(0, len(preds), split_size):
        part, log_part = preds[i:i + split_size], log_preds[i:i + split_size]
        kl = part * (log_part - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score_adm(logits: object, split_size: int = 5000) -> float:
    """Inception Score as the ADM evaluator: float32 softmax, no shuffle, consecutive splits."""
    return _inception_score_adm(logits, split_size)[0]


# ---------------------------------------------------------------- precision / recall

# torch is imported where precision/recall runs: the other metrics (and listing the metric specs
# that import this module) do not need it.
DistanceFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def _sqdist_fp32(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    nu = u.square().sum(1)[:, None]
    nv = v.square().sum(1)[None, :]
    return (nu - 2 * (u @ v.T) + nv).clamp_min_(0.0)


def adm_pairwise_distances(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Squared distances as the ADM DistanceBlock: float16 first, float32 if not all finite.

    Emulates the TF graph ``max(|u|^2 - 2 u.v + |v|^2, 0)`` evaluated on float16 tensors with
    float32 accumulation inside the reductions and the matmul (as on a GPU); each op's result
    is rounded to float16. Bit-identity with TensorFlow is not guaranteed.
    """
    import torch

    u16, v16 = u.half(), v.half()
    nu = (u16 * u16).float().sum(1).half()[:, None]
    nv = (v16 * v16).float().sum(1).half()[None, :]
    d = (u16.float() @ v16.float().T).half()
    d.mul_(-2).add_(nu).add_(nv).clamp_min_(0.0)
    if bool(torch.isfinite(d).all()):
        return d
    return _sqdist_fp32(u.float(), v.float())


def _cdist_torch_fidelity(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.cdist(u, v)


def _knn_radii(feats: torch.Tensor, k: int, block: int, dist: DistanceFn) -> torch.Tensor:
    """Distance of each row to its k-th neighbour (index k of the sorted row, self included)."""
    import torch

    radii = []
    for rows in progress(feats.split(block), desc="PR radii", unit="blocks", detail=True):
        best = None
        for cols in feats.split(block):
            d = dist(rows, cols)
            top = torch.topk(d, min(k + 1, d.shape[1]), dim=1, largest=False).values.float()
            best = top if best is None else torch.cat([best, top], dim=1)
            best = torch.topk(best, min(k + 1, best.shape[1]), dim=1, largest=False).values
        radii.append(best[:, k])
    return torch.cat(radii)


def _coverage(real: torch.Tensor, r_real: torch.Tensor, fake: torch.Tensor,
              r_fake: torch.Tensor, block: int,
              dist: DistanceFn) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    real_in = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    fake_in = torch.zeros(len(fake), dtype=torch.bool, device=real.device)
    for i in progress(range(0, len(real), block), desc="PR coverage", unit="blocks",
                      detail=True):
        rows, rr = real[i:i + block], r_real[i:i + block]
        for j in range(0, len(fake), block):
            d = dist(rows, fake[j:j + block])
            real_in[i:i + block] |= (d <= r_fake[None, j:j + block]).any(dim=1)
            fake_in[j:j + block] |= (d <= rr[:, None]).any(dim=0)
    return fake_in, real_in


def precision_recall(real_feats: object, fake_feats: object, k: int = 3, mode: str = "adm",
                     block_size: int = 10000,
                     device: str | torch.device = "cpu") -> tuple[float, float]:
    """Kynkaanniemi et al. k-NN precision and recall of fake features against real ones.

    ``mode="adm"`` follows the ADM evaluator's ManifoldEstimator (squared distances by
    `adm_pairwise_distances` per block of ``block_size`` x ``block_size``, radius = index k of
    the sorted row including self; the ADM ``eps`` only enters its realism score, not P/R).
    ``mode="torch-fidelity"`` follows torch_fidelity.metric_prc: float32 ``torch.cdist`` on the
    same blocks, radius = ``kthvalue(k + 1)``. Rows are processed in blocks and only the k+1
    nearest distances are kept, so memory stays bounded for 10k x 50k x 2048 features.
    """
    import torch

    dist = {"adm": adm_pairwise_distances, "torch-fidelity": _cdist_torch_fidelity}.get(mode)
    if dist is None:
        raise MetricInputError(f"precision_recall mode must be 'adm' or 'torch-fidelity', got "
                               f"{shown(mode)}")
    if k < 1 or block_size < 1:
        raise MetricInputError(f"precision_recall needs k >= 1 and block_size >= 1 (got {k}, "
                               f"{block_size})")
    r, f = feature_pair(real_feats, fake_feats, ("real_feats", "fake_feats"))
    if min(len(r), len(f)) < k + 1:
        raise MetricInputError(f"precision_recall with k={k} needs at least {k + 1} rows per set "
                               f"(real: {len(r)}, fake: {len(f)})")
    real = torch.as_tensor(np.ascontiguousarray(r, dtype=np.float32), device=device)
    fake = torch.as_tensor(np.ascontiguousarray(f, dtype=np.float32), device=device)
    with torch.no_grad():
        r_real = _knn_radii(real, k, block_size, dist)
        r_fake = _knn_radii(fake, k, block_size, dist)
        fake_in, real_in = _coverage(real, r_real, fake, r_fake, block_size, dist)
    # torch-fidelity averages in float32, ADM in float64; keep each one's rounding.
    mean_dtype = torch.float64 if mode == "adm" else torch.float32
    return fake_in.to(mean_dtype).mean().item(), real_in.to(mean_dtype).mean().item()
