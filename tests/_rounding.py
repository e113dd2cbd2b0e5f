"""Rounding-error bounds that the float tests compare against (derived here, not tuned).

Notation (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 2-3): ``u`` is the unit
roundoff of the working precision (2^-24 for float32, 2^-53 for float64) and
``gamma(n) = n u / (1 - n u)``.

- A sum of n floats computed in ANY order (pairwise, blocked, SIMD lanes, several threads) has
  ``|fl(sum x) - sum x| <= gamma(n - 1) * sum |x|``.
- A dot product of length d, in any order and with or without FMA (every BLAS kernel, any ISA,
  any thread split of the output) has ``|fl(a.b) - a.b| <= gamma(d) * sum |a_k b_k|``.
- One correctly rounded operation (+, -, *, /, sqrt) has relative error <= u; libm/numpy
  transcendental functions (pow, exp, log) are taken as <= 1 ulp, i.e. relative error <= 2u.

These bounds hold on every IEEE machine whatever BLAS, ISA or thread count computed the
numbers, so two implementations of the same formula differ by at most the sum of their bounds
against exact arithmetic. The bounds below are first order in u: the neglected terms are
products of two such errors, relatively smaller by (d + m) u (<= 1e-4 for the float32 sizes
used in the tests), which the factor SECOND_ORDER covers.
"""

from __future__ import annotations

import numpy as np

SECOND_ORDER = 1.01  # covers the O(u^2) terms left out of the first-order sums (see above)


def unit_roundoff(dtype: type | np.dtype) -> float:
    """u of a float dtype: 2^-24 for float32, 2^-53 for float64."""
    return float(np.finfo(dtype).eps) / 2


def gamma(n: int, u: float) -> float:
    """gamma(n) = n u / (1 - n u): the relative bound of n successive roundings."""
    assert n * u < 0.5, (n, u)
    return n * u / (1 - n * u)


def _kernel_error(a: np.ndarray, b: np.ndarray, g: float, coef0: float, degree: int,
                  u: float) -> tuple[np.ndarray, np.ndarray]:
    """|K| and the bound on |fl(K) - K| per entry of K = (g a.b + coef0)^degree.

    fl(a.b) is off by <= gamma(d) |a|.|b|; multiplying by g (itself rounded to the working
    precision) adds 2u|t|, adding coef0 u|s|; the power (1 ulp) 2u|K|; the error of s passes
    through the power with the derivative degree |s|^(degree-1).
    """
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    t = (a64 @ b64.T) * g
    s = t + coef0
    err_s = g * gamma(a.shape[1], u) * (np.abs(a64) @ np.abs(b64).T) + 2 * u * np.abs(t) \
        + u * np.abs(s)
    k = np.abs(s) ** degree
    return k, degree * np.abs(s) ** (degree - 1) * err_s + 2 * u * k


def mmd2_bound_torch_fidelity(x: np.ndarray, y: np.ndarray, g: float, coef0: float = 1.0,
                              degree: int = 3) -> tuple[float, float]:
    """(bound on |computed - exact|, bound on |value|) of torch-fidelity's unbiased MMD^2 of (x, y).

    The sums are ``K.sum(axis=1)`` (or axis 0) then ``.sum()``: two sums of m terms, each within
    gamma(m-1) of exact in any order; subtracting the diagonal, adding the two within-set sums,
    dividing by m(m-1) (an exact integer in float for m < 4096), dividing by m^2 and the final
    subtraction are one rounding each (doubling is exact).
    """
    u = unit_roundoff(x.dtype)
    m = x.shape[0]
    gm = gamma(m - 1, u)
    kxx, exx = _kernel_error(x, x, g, coef0, degree, u)
    kyy, eyy = _kernel_error(y, y, g, coef0, degree, u)
    kxy, exy = _kernel_error(x, y, g, coef0, degree, u)
    off = ~np.eye(m, dtype=bool)
    within, cross = (kxx.sum() + kyy.sum()) / (m * (m - 1)), 2 * kxy.sum() / (m * m)
    e_within = (exx[off].sum() + eyy[off].sum()) / (m * (m - 1)) + (2 * gm + 3 * u) * within
    e_cross = 2 * exy.sum() / (m * m) + (2 * gm + u) * cross
    magnitude = within + cross
    return SECOND_ORDER * (e_within + e_cross + u * magnitude), magnitude


def mmd2_bound_cleanfid(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(bound on |computed - exact|, bound on |t|) of one clean-fid KID term t.

    cleanfid.fid.kernel_distance: a = Kxx + Kyy (one rounding); the sums of all m^2 entries of a
    and of b = Kxy (gamma(m^2 - 1) each, any order) and of the diagonal of a (gamma(m - 1)); then
    a subtraction, /(m-1), *2 (exact), /m and a subtraction (one rounding each).
    """
    u = unit_roundoff(x.dtype)
    m, n = x.shape
    kxx, exx = _kernel_error(x, x, 1.0 / n, 1.0, 3, u)
    kyy, eyy = _kernel_error(y, y, 1.0 / n, 1.0, 3, u)
    kxy, exy = _kernel_error(x, y, 1.0 / n, 1.0, 3, u)
    a, e_a = kxx + kyy, exx + eyy + u * (kxx + kyy)
    g_all, g_diag = gamma(m * m - 1, u), gamma(m - 1, u)
    e_a_off = e_a.sum() + g_all * a.sum() + np.trace(e_a) + g_diag * np.trace(a)
    within, cross = a.sum() / (m - 1), 2 * kxy.sum() / m
    e_t = e_a_off / (m - 1) + 2 * u * within + 2 * (exy.sum() + g_all * kxy.sum()) / m + u * cross
    magnitude = within + cross
    return SECOND_ORDER * (e_t + u * magnitude), magnitude


def _own_rounding(magnitudes: list[float], u: float) -> float:
    # mean and population std of n values in float64 (np.mean, np.std): sums of n terms, a
    # division, squares and a square root, each term at most max|value|
    return gamma(2 * len(magnitudes) + 4, u) * max(magnitudes)


def kid_bound(f1: np.ndarray, f2: np.ndarray, subsets: int, subset_size: int,
              seed: int, dtype: type = np.float32) -> tuple[float, float]:
    """Bounds on |computed - exact| of (mean, std) of diffbench's / torch-fidelity's KID.

    Redraws the subsets exactly as torch-fidelity does (one RandomState(seed); per subset rows of
    f1, then of f2) and bounds each subset's MMD^2 (`mmd2_bound_torch_fidelity`). The mean of n
    values is off by at most the mean of their errors; the population std is 1-Lipschitz in the
    max norm of its inputs (centering is a projection), so it is off by at most their largest
    error; both get float64's own rounding of n terms on top.
    """
    x_all, y_all = f1.astype(dtype), f2.astype(dtype)
    g = 1.0 / x_all.shape[1]
    rng = np.random.RandomState(seed)
    errs, mags = [], []
    for _ in range(subsets):
        x = x_all[rng.choice(len(x_all), subset_size, replace=False)]
        y = y_all[rng.choice(len(y_all), subset_size, replace=False)]
        e, mag = mmd2_bound_torch_fidelity(x, y, g)
        errs.append(e)
        mags.append(mag)
    own = _own_rounding(mags, unit_roundoff(np.float64))
    return float(np.mean(errs) + own), float(np.max(errs) + own)


def kid_cleanfid_bound(f1: np.ndarray, f2: np.ndarray, subsets: int, subset_size: int,
                       seed: int | None) -> float:
    """Bound on |computed - exact| of clean-fid's KID (subsets drawn as clean-fid draws them).

    With ``seed=None`` every row must be used (subset size = both set sizes): the draw is then
    only a permutation, which leaves the exact value and the bound unchanged, so the rows are
    taken in their given order. clean-fid accumulates the terms t in the working precision
    (``t += ...``; gamma(subsets - 1) of their magnitudes), then divides by subsets and by m.
    """
    m = min(len(f1), len(f2), subset_size)
    rng = np.random.RandomState(seed) if seed is not None else None
    errs, mags = [], []
    for _ in range(subsets):
        if rng is None:
            assert m == len(f1) == len(f2), "without a seed every row must be used"
            x, y = f2, f1
        else:
            x = f2[rng.choice(len(f2), m, replace=False)]
            y = f1[rng.choice(len(f1), m, replace=False)]
        e, mag = mmd2_bound_cleanfid(x, y)
        errs.append(e)
        mags.append(mag)
    u = unit_roundoff(f1.dtype)
    total = np.sum(errs) + gamma(subsets + 1, u) * np.sum(mags)
    return float(total / subsets / m)


def fid_bound(sigma1: np.ndarray, sigma2: np.ndarray, mu_term: float) -> float:
    """Bound on |computed - exact| of a float64 Frechet distance (ours or the references').

    Tr sqrt(S1 S2) is the sum of sqrt(lambda_i) over the eigenvalues of S1 S2. Backward-stable
    eigensolvers (LAPACK's symmetric eigh, the Schur form behind sqrtm) return the eigenvalues
    of a matrix within d u ||S1|| ||S2|| of S1 S2 in 2-norm, so (Weyl) each computed eigenvalue
    is within delta = d u ||S1|| ||S2|| of an exact one, and its square root within
    min(sqrt(delta), delta / (2 sqrt(lambda))): tiny for a well-conditioned product, about
    sqrt(delta) for the zero eigenvalues of a rank-deficient one (fewer images than dims). The
    remaining sums (traces, ||mu1 - mu2||^2, the three-term total) are gamma(d + 3) of their
    magnitudes.
    """
    u = unit_roundoff(np.float64)
    d = sigma1.shape[0]
    n1, n2 = np.linalg.norm(sigma1, 2), np.linalg.norm(sigma2, 2)
    delta = d * u * n1 * n2
    lam = np.clip(np.linalg.eigvals(sigma1 @ sigma2).real, 0.0, None)
    per_eig = np.minimum(np.sqrt(delta), delta / (2 * np.sqrt(np.maximum(lam, 1e-300))))
    tr = np.sqrt(lam).sum()
    sums = gamma(d + 3, u) * (np.trace(sigma1) + np.trace(sigma2) + 2 * tr + mu_term)
    return SECOND_ORDER * (2 * per_eig.sum() + sums)


def _cov_norm(rows: np.ndarray) -> float:
    """‖cov(rows)‖₂, the largest eigenvalue of XcᵀXc/(n−1), from the n×n Gram matrix XcXcᵀ,
    which has the same non-zero eigenvalues (an identity, not an estimate; with n < D it avoids the
    SVD of a D×D matrix)."""
    centred = rows - rows.mean(0)
    return float(np.linalg.eigvalsh(centred @ centred.T)[-1] / (len(rows) - 1))


def fid_rows_bound(real: np.ndarray, fake: np.ndarray) -> float:
    """Bound on the difference of two float64 FIDs computed from the same float32 feature rows,
    one of them with float32 means (clean-fid), and with rank-deficient covariances allowed.

    The means: a float32 running sum of n rows is off by at most n·u32·max|f_i| per column, and
    the float32 difference and dot give ≤ u32·|d_i| and D·u32·‖d‖², so ‖d‖² is off by at most
    2·Σ|d_i|·|Δd_i| + D·u32·‖d‖² (an upper bound for float64 means too). The covariances (np.cov
    centred, or float64 raw moments) and Tr√(S1S2) (scipy's sqrtm, or eigh of S1^½S2S1^½): every
    computed eigenvalue is within ε = D·u64·(‖S1‖‖S2‖ + 2n·M²·(‖S1‖+‖S2‖)) of the exact one
    (backward-stable eigensolvers and the covariance rounding, through Weyl), and √ is
    ½-Hölder, so each of the D square roots moves by at most √ε: 2·D·√ε per computation, twice
    that between two.
    """
    u32, u64 = unit_roundoff(np.float32), unit_roundoff(np.float64)
    r, f = real.astype(np.float64), fake.astype(np.float64)
    n, dim = max(len(r), len(f)), r.shape[1]
    d = r.mean(0) - f.mean(0)
    biggest = np.abs(r).max(0) + np.abs(f).max(0)
    mean_term = 2 * np.abs(d) @ (n * u32 * biggest + u32 * np.abs(d)) + dim * u32 * (d @ d)
    s1, s2 = _cov_norm(r), _cov_norm(f)
    m2 = max(np.abs(r).max(), np.abs(f).max()) ** 2
    eps = dim * u64 * (s1 * s2 + 2 * n * m2 * (s1 + s2))
    return float(mean_term + 4 * dim * np.sqrt(eps))
