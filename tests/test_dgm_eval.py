"""dgm-eval's two-set metrics: diffbench's blocked implementations vs a plain reference.

The reference is `tests/_dgm_eval.py`, an independent float64 implementation of dgm-eval's
protocol (layer6ai-labs/dgm-eval at d57a6d2 defines the protocol: estimators, subset sizes,
random draws) written from the metrics' definitions, in full-matrix form. The inputs are photo
rows: 8×8 RGB patches (192 values in [0, 1]) cut at seeded positions from scikit-image's sample
photos, the reference set from one photo and the generated set from others, in float64.

Bounds (float64, u = 2⁻⁵³; see tests/_rounding.py for the rules used):

- fd_eff: the test hands the reference's moments to diffbench, and both take eigenvalues of
  the same float64 product S1·S2 with LAPACK's geev, so the value is the same computation:
  1e-12 relative to Tr S1 + Tr S2 (a few hundred u times the largest term) covers the one
  difference, numpy's vs scipy's ``eigvals`` wrapper around geev. The sqrtm form of FD on the
  same moments agrees within the backward error of sqrtm (1e-8 asked, as for fd_infinity).
- fd_infinity: the same subsets (asserted); each FD_N by diffbench's eigh route vs scipy's
  sqrtm: both are backward stable, so each Tr√(S1S2) agrees within ~√κ·n·u relative to
  Tr S1 + Tr S2; the least-squares intercept (closed form in diffbench, LAPACK lstsq in the
  reference)
  amplifies errors of the FD_N by at most Σ|wᵢ| ≤ 1 + 2·max(1/N)/Δ(1/N) (≤ 30 for these sizes).
  1e-8 relative to the traces is asked, ~1000× above the estimate for these 192-d rows.
- kd: the same subsets (asserted: same RandomState stream), the same kernel and estimator;
  the bound is `kid_bound` in float64 (sums and dot products in any order).
- vendi: the non-zero eigenvalues of XXᵀ/n and XᵀX/n agree within ~n·u·‖K‖ (Weyl); the n - d
  eigenvalues that are zero in exact arithmetic come out as ±n·u·‖K‖ and add at most
  |p log p| ≤ 1e-12 each; 1e-9 relative covers both.
- authpct, realism: see the tests.
"""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from diffbench.metrics import dgm
from diffbench.metrics.dgm_specs import REALISM, SW_APPROX, realism
from diffbench.metrics.knn import realism as realism_rows
from diffbench.metrics.spec import Gaussian
from tests import _dgm_eval as ref
from tests._rounding import SECOND_ORDER, gamma, kid_bound, unit_roundoff

U64 = unit_roundoff(np.float64)


def patches(image: np.ndarray, n: int, seed: int, size: int = 8) -> np.ndarray:
    """`n` size×size RGB patches of `image` at seeded positions, as float64 rows in [0, 1]."""
    rng = np.random.RandomState(seed)
    h, w = image.shape[:2]
    ys, xs = rng.randint(0, h - size, n), rng.randint(0, w - size, n)
    rows = [image[y:y + size, x:x + size, :3].reshape(-1) for y, x in zip(ys, xs, strict=True)]
    return np.asarray(rows, dtype=np.float64) / 255.0


@pytest.fixture(scope="module")
def sets() -> dict[str, np.ndarray]:
    astronaut, coffee, chelsea = skimage.data.astronaut(), skimage.data.coffee(), \
        skimage.data.chelsea()
    real = _distinct(patches(astronaut, 760, 0), 700)
    fake = np.concatenate([patches(coffee, 300, 1), patches(chelsea, 300, 2),
                           patches(astronaut, 200, 3)])
    # no generated row equal to a reference row (flat black background patches repeat)
    fake = fake[~(fake[:, None, :] == real[None]).all(-1).any(1)]
    return {"real": real, "fake": _distinct(fake, 750)}


def _distinct(rows: np.ndarray, n: int) -> np.ndarray:
    _, first = np.unique(rows, axis=0, return_index=True)
    return rows[np.sort(first)][:n]


def _traces(r: np.ndarray, f: np.ndarray) -> float:
    return float(np.trace(np.cov(r, rowvar=False)) + np.trace(np.cov(f, rowvar=False)))


def test_fd_eff_equals_dgm_eval(sets):
    r, f = sets["real"], sets["fake"]
    want = ref.compute_efficient_fd_with_reps(r, f)
    (m1, s1), (m2, s2) = ref.compute_statistics(r), ref.compute_statistics(f)
    got = dgm.fd_eff(m1, s1, m2, s2)
    assert abs(got - want) <= 1e-12 * _traces(r, f), (got, want)
    assert abs(got - ref.compute_fd_with_stats(m1, m2, s1, s2)) <= 1e-8 * _traces(r, f)


@pytest.mark.parametrize("n_fake", [750, 60])
def test_fd_infinity_equals_dgm_eval(sets, n_fake):
    r, f = sets["real"], sets["fake"][:n_fake]
    want = ref.compute_fd_infinity(r, f, seed=7)
    got, details = dgm.fd_infinity(r, f, seed=7)
    sizes = dgm.fd_infinity_sizes(len(f))
    assert details["sizes"] == sizes.tolist()
    # the same subsets: Generator.choice of rows and of indices consume the stream alike
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    s1, norm = np.cov(r, rowvar=False), 0.0
    for size in sizes:
        sub = a.choice(f, size, replace=False)
        np.testing.assert_array_equal(sub, f[b.choice(len(f), size, replace=False)])
        norm = max(norm, np.linalg.norm(s1 @ np.cov(sub, rowvar=False), 2))
    if len(f) > r.shape[1]:
        assert abs(got - want) <= 1e-8 * _traces(r, f), (got, want)
    else:
        # fewer rows than dimensions: S1·S2 has d - n + 1 zero eigenvalues, whose square roots
        # sqrtm gets only within √(u‖S1S2‖) each (the root of a perturbation of zero); the
        # eigh route clips them at 0. Up to 2d of them per FD_N, times the fit's 30.
        bound = 30 * 2 * r.shape[1] * np.sqrt(U64 * norm)
        assert abs(got - want) <= bound, (got, want, bound)


def test_kd_equals_dgm_eval_on_the_same_draws(sets):
    r, f = sets["real"], sets["fake"]
    np.random.seed(123)
    want = ref.compute_mmd(r, f, n_subsets=20, subset_size=500)
    mean, std = dgm.kd(r, f, subsets=20, subset_size=500, seed=123)
    err_mean, err_std = kid_bound(r, f, 20, 500, seed=123, dtype=np.float64)
    assert abs(mean - want.mean()) <= 2 * err_mean
    assert abs(std - want.std()) <= 2 * err_std
    # dgm-eval shrinks the subset to the smaller set instead of failing
    np.random.seed(5)
    small = ref.compute_mmd(r[:40], f, n_subsets=3)
    got_small, _ = dgm.kd(r[:40], f, subsets=3, seed=5)
    err_small, _ = kid_bound(r[:40], f, 3, 40, seed=5, dtype=np.float64)
    assert abs(got_small - small.mean()) <= 2 * err_small


def vendi_rel_bound(n: int) -> float:
    """Float64 bound on Vendi's relative difference between two eigen-solvers: each eigenvalue p
    of the trace-1 kernel moves by at most δ = n·ε (a backward-stable eigensolver), each
    p·log p term by at most δ·(|log δ| + 1), the entropy by n times that, and exp(H) by the
    same amount relatively."""
    delta = n * np.finfo(np.float64).eps
    return n * delta * (abs(np.log(delta)) + 1)


@pytest.mark.parametrize("n", [150, 750])  # n < d (n×n kernel) and n > d (d×d form)
def test_vendi_equals_dgm_eval(sets, n):
    f = sets["fake"][:n]
    want = ref.compute_vendi_score(f)
    assert dgm.vendi(f) == pytest.approx(want, rel=vendi_rel_bound(n))


def test_vendi_per_class_equals_dgm_eval(sets):
    f = sets["fake"]
    labels = np.repeat([0, 1, 2], [300, 300, 150])
    want = ref.compute_per_class_vendi_scores(f, labels)
    np.testing.assert_allclose(dgm.vendi_per_class(f, labels), want, rtol=1e-9)
    # the effective number of distinct rows: k identical rows count once, k orthogonal k times
    assert dgm.vendi(np.repeat(f[:1], 50, axis=0)) == pytest.approx(1.0, rel=1e-12)
    assert dgm.vendi(np.eye(7)) == pytest.approx(7.0, rel=1e-12)


def _ambiguous_auth(r: np.ndarray, f: np.ndarray) -> int:
    """Fakes whose authenticity decision is within float32 rounding.

    dgm-eval's protocol compares float32 distances (|x|² + |y|² - 2x·y, then a square root):
    the squared distance is off by at most gamma(d + 2)·(|x|² + |y|² + 2|x||y|) (u = 2⁻²⁴) plus
    the rounding of the inputs to float32 (4u(|x|² + |y|²)), the distance by that over 2·dist
    (and u for the root). A fake whose two compared distances are closer than the sum of their
    bounds, or whose nearest real point is not unique within that bound, may go either way
    there. diffbench (|x|² + |y|² - 2x·y) and the reference (sums of squared differences) both
    work in float64, whose errors are 2²⁹ times smaller than these bounds, so they can only
    disagree on the fakes counted here too; the percentage then differs by at most their share.
    """
    u32, d = unit_roundoff(np.float32), r.shape[1]
    rn, fn = np.sqrt((r * r).sum(1)), np.sqrt((f * f).sum(1))

    def bound(dist: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        sq = (gamma(d + 2, u32) + 4 * u32) * (a + b) ** 2
        return sq / (2 * np.maximum(dist, 1e-30)) + 2 * u32 * dist + np.sqrt(sq) * (dist < 1e-6)

    d_rr = np.sqrt(np.maximum(((r[:, None] - r[None]) ** 2).sum(-1), 0))
    np.fill_diagonal(d_rr, np.inf)
    d_fr = np.sqrt(((f[:, None] - r[None]) ** 2).sum(-1))
    nn_r, idx_r = d_rr.min(1), d_rr.argmin(1)
    idx = d_fr.argmin(1)
    nn_f = d_fr[np.arange(len(f)), idx]
    e_f = bound(nn_f, fn, rn[idx])
    e_r = bound(nn_r[idx], rn[idx], rn[idx_r[idx]])
    close = np.abs(nn_r[idx] - nn_f) <= e_f + e_r
    second = np.sort(d_fr, axis=1)[:, 1] - nn_f <= 2 * e_f
    return int((close | second).sum())


def test_authpct_equals_dgm_eval(sets):
    r, f = sets["real"], sets["fake"]
    want = ref.compute_authpct(r, f)
    got = dgm.authpct(r, f, block=256)  # several blocks per side
    slack = 100.0 * _ambiguous_auth(r, f) / len(f)
    assert abs(got - want) <= slack + 1e-4, (got, want, slack)  # + float32's 100·sum/len
    # copies of reference rows are not authentic: the percentage drops
    copies = np.concatenate([f[:500], r[:250]])
    assert dgm.authpct(r, copies) < got - 20


def test_sw_approx_equals_dgm_eval(sets):
    r, f = sets["real"], sets["fake"]
    want = ref.sw_approx(r, f)
    (m1, s1), (m2, s2) = ref.compute_statistics(r), ref.compute_statistics(f)
    got = SW_APPROX.compute(Gaussian(m1, s1, len(r)), Gaussian(m2, s2, len(f)))
    # sums of n·d squares in another order: gamma(n·d) relative on each second moment
    assert got == pytest.approx(want, rel=4 * gamma(len(r) * r.shape[1], U64) / 1e-2)


def test_realism_equals_dgm_eval(sets):
    """Per fake: max over the kept reference rows of radius / distance.

    diffbench forms a squared distance as |x|² + |y|² - 2x·y (float64): off by at most
    gamma(d + 2)·(|x| + |y|)² ≤ gamma(d + 2)·N², N = max|r| + max|f|. The reference sums the
    squared differences: off by gamma(d + 2) relative. A distance δ is then off by the squared
    error over 2δ, plus u for the root; a k-th smallest distance (the radius) by at most the
    largest error of its row. A ratio of two distances adds their relative errors, plus u for
    the division. δ ≥ δ_min, the smallest reference–fake distance or kept radius.
    """
    r, f = sets["real"], sets["fake"]
    np.random.seed(11)
    inds = np.random.choice(len(r), min(500, len(r), len(f)), replace=False)
    want = ref.prdc_realism(r[inds], f, nearest_k=5)
    value = realism(r, f, nearest_k=5, subsample=500, seed=11)
    got = np.array(value.details["per_sample"], dtype=np.float64)
    kept, g = r[inds], gamma(r.shape[1] + 2, U64)
    norms = np.sqrt((r * r).sum(1)).max() + np.sqrt((f * f).sum(1)).max()
    radii = np.sort(np.sqrt(((kept[:, None] - kept[None]) ** 2).sum(-1)), axis=1)[:, 5]
    d_min = min(np.sqrt(((f[:, None] - kept[None]) ** 2).sum(-1)).min(), radii.min())
    # both codes keep the same rows: no radius within its rounding of the median
    assert np.abs(radii - np.median(radii)).min() > 2 * g * norms ** 2 / (2 * d_min)
    per_distance = g * norms ** 2 / (2 * d_min ** 2) + g / 2 + 2 * U64
    rel = SECOND_ORDER * (2 * per_distance + 2 * U64)
    np.testing.assert_allclose(got, want, rtol=rel, atol=0)
    assert value.value == pytest.approx(np.median(want), rel=rel)
    assert value.details["rows"] == [500, len(f)] and value.details["copies"] == 0
    # a copy of a kept reference row: in diffbench |x|² + |x|² - 2x·x is 0 or a rounding
    # residue (≤ 4·gamma(d)·|x|², by BLAS), so its distance is ≤ 2√(gamma(d))|x| ~ 1e-6 and its
    # score (radius / distance, inf at 0) above 1e4; the reference's difference is exactly 0: inf
    copies = np.concatenate([f[:10], kept[np.argsort(radii)[:3]]])  # balls below the median
    for scores in (realism_rows(r[inds], copies, nearest_k=5),
                   ref.prdc_realism(r[inds], copies, nearest_k=5)):
        assert (scores[10:] > 1e4).all() and (scores[:10] < 1e2).all()
    assert REALISM.name == "realism"
