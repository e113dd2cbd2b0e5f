"""Parity of diffbench.metrics.functional with torch-fidelity / clean-fid, and closed forms."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from cleanfid import fid as cleanfid
from torch_fidelity import metric_fid, metric_isc, metric_kid, metric_prc

from diffbench.errors import MetricInputError
from diffbench.metrics import functional as F
from tests._rounding import fid_bound, kid_bound, kid_cleanfid_bound


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _references(m1, s1, m2, s2) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm(disp=) is deprecated in SciPy 1.17
        cf = float(cleanfid.frechet_distance(m1, s1, m2, s2))
    tf = metric_fid.fid_statistics_to_metric({"mu": m1, "sigma": s1}, {"mu": m2, "sigma": s2},
                                             False)["frechet_inception_distance"]
    return cf, tf


# ---------------------------------------------------------------- FID

@pytest.mark.parametrize("n,d,seed", [(600, 64, 0), (1000, 256, 1)])
def test_fid_matches_cleanfid_and_torch_fidelity(n, d, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.3
    b = rng.standard_normal((n, d)) * 1.2 + 0.1
    m1, s1 = _stats(a)
    m2, s2 = _stats(b)
    ours = F.frechet_distance(m1, s1, m2, s2)
    cf, tf = _references(m1, s1, m2, s2)
    # float64 on all sides; each within fid_bound of exact (eigenvalue perturbation, see
    # tests/_rounding.py), here ~1e-12 of the value
    tol = fid_bound(s1, s2, float((m1 - m2) @ (m1 - m2)))
    assert tol < 1e-10 * ours
    assert abs(ours - cf) <= 2 * tol and abs(ours - tf) <= 2 * tol


def test_fid_rank_deficient_close_to_references():
    rng = np.random.default_rng(2)
    m1, s1 = _stats(rng.standard_normal((60, 128)))  # n < d: rank 59
    m2, s2 = _stats(rng.standard_normal((90, 128)) + 0.2)
    ours = F.frechet_distance(m1, s1, m2, s2)
    cf, tf = _references(m1, s1, m2, s2)
    assert np.isfinite(ours)
    # S1 S2 has 69 zero eigenvalues: each square root is off by up to sqrt(d u ||S1|| ||S2||)
    # ~ 5e-7 in any float64 eigensolver, so the three agree to ~1e-6 of the value, not 1e-12
    tol = fid_bound(s1, s2, float((m1 - m2) @ (m1 - m2)))
    assert abs(ours - tf) <= 2 * tol and abs(ours - cf) <= 2 * tol


def test_fid_identical_gaussians_is_zero():
    rng = np.random.default_rng(3)
    mu, sigma = _stats(rng.standard_normal((500, 96)))
    assert abs(F.frechet_distance(mu, sigma, mu, sigma)) <= fid_bound(sigma, sigma, 0.0)


def test_fid_diagonal_covariances_closed_form():
    rng = np.random.default_rng(4)
    mu1, mu2 = rng.standard_normal(50), rng.standard_normal(50)
    a, b = rng.uniform(0.1, 3.0, 50), rng.uniform(0.1, 3.0, 50)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = F.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-10)


def test_fid_equal_covariance_gives_mean_distance():
    rng = np.random.default_rng(5)
    _, sigma = _stats(rng.standard_normal((400, 80)) @ rng.standard_normal((80, 80)))
    mu1, mu2 = rng.standard_normal(80), rng.standard_normal(80)
    got = F.frechet_distance(mu1, sigma, mu2, sigma)
    assert got == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-8)


def test_fid_rejects_bad_input():
    mu, sigma = np.zeros(4), np.eye(4)
    bad = sigma.copy()
    bad[1, 1] = np.nan
    with pytest.raises(MetricInputError, match="NaN"):
        F.frechet_distance(mu, bad, mu, sigma)
    with pytest.raises(MetricInputError, match="different dims"):
        F.frechet_distance(mu, sigma, np.zeros(3), np.eye(3))
    with pytest.raises(MetricInputError, match=r"\(d, d\)"):
        F.frechet_distance(mu, np.eye(3), mu, sigma)
    with pytest.raises(MetricInputError, match="positive semidefinite"):
        F.frechet_distance(mu, -np.eye(4), mu, sigma)
    with pytest.raises(MetricInputError, match="symmetric"):
        F.frechet_distance(mu, np.triu(np.ones((4, 4))), mu, sigma)


# ---------------------------------------------------------------- KID

@pytest.fixture(scope="module")
def kid_feats() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(10)
    f1 = rng.random((300, 48), dtype=np.float32)
    f2 = (rng.random((400, 48), dtype=np.float32) * 1.1 + 0.05).astype(np.float32)
    return f1, f2


@pytest.fixture
def global_np_rng():
    """Seeds numpy's global RNG (clean-fid draws its subsets from it) and restores it afterwards,
    so these tests neither depend on nor change what other tests drew before them."""
    state = np.random.get_state()
    yield np.random.seed
    np.random.set_state(state)


# KID tolerances come from tests/_rounding.py: first-order bounds on |computed - exact| that hold
# for any BLAS kernel, summation order and thread count (dot products within gamma(d)|a|.|b|,
# sums within gamma(n-1) sum|x|, propagated through the cubic kernel and the MMD^2 sums). Two
# computations of the same number differ by at most the sum of their bounds. In float64 the
# bound is ~1e-12 of the value: that is the parity test; float32 (what the scorer runs, as
# torch-fidelity does) gets its own bound, ~2^29 times larger.

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kid_matches_torch_fidelity(kid_feats, dtype):
    f1, f2 = (f.astype(dtype) for f in kid_feats)
    ours = F.kid(f1, f2, subsets=20, subset_size=100, seed=2020)
    ref = metric_kid.kid_features_to_metric(torch.from_numpy(f1), torch.from_numpy(f2),
                                            kid_subsets=20, kid_subset_size=100, rng_seed=2020,
                                            verbose=False)
    mean_tol, std_tol = kid_bound(f1, f2, 20, 100, 2020, dtype)
    if dtype == np.float64:
        assert mean_tol < 1e-10 * ours[0] and std_tol < 1e-10 * ours[1]  # exact to ~1e-10
    assert abs(ours[0] - ref["kernel_inception_distance_mean"]) <= 2 * mean_tol
    assert abs(ours[1] - ref["kernel_inception_distance_std"]) <= 2 * std_tol


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kid_whole_kernel_path_equals_per_subset_kernels(kid_feats, monkeypatch, dtype):
    # 300 + 400 rows, 20 subsets of 100: small enough for the whole-kernel path. Its entries
    # are dot products of the same rows, but one BLAS call over all rows and one per subset
    # may round them differently (blocking, ISA, threads), so they agree within the bound.
    f1, f2 = (f.astype(dtype) for f in kid_feats)
    whole = F.kid(f1, f2, subsets=20, subset_size=100, seed=5)
    monkeypatch.setattr(F, "KID_GRAM_ENTRIES", 0)  # force one kernel per subset
    per_subset = F.kid(f1, f2, subsets=20, subset_size=100, seed=5)
    mean_tol, std_tol = kid_bound(f1, f2, 20, 100, 5, dtype)
    assert abs(whole[0] - per_subset[0]) <= 2 * mean_tol
    assert abs(whole[1] - per_subset[1]) <= 2 * std_tol
    assert abs(whole[0] - F.kid(f1, f2, subsets=20, subset_size=100, seed=6)[0]) > 2 * mean_tol


def test_kid_float64_close_to_float32(kid_feats):
    f1, f2 = kid_feats
    m32, _ = F.kid(f1, f2, subsets=5, subset_size=200)
    m64, _ = F.kid(f1, f2, subsets=5, subset_size=200, dtype=np.float64)
    tol32, tol64 = kid_bound(f1, f2, 5, 200, 2020)[0], kid_bound(f1, f2, 5, 200, 2020, np.float64)[0]
    assert abs(m64 - m32) <= tol32 + tol64


# clean-fid: float64 on both sides (kernel_distance keeps the features' dtype). In float32 the
# two run the same numpy operations on the same arrays, but its sums over all m^2 kernel entries
# have a worst-case bound of several percent, too wide to show anything.

def test_kid_cleanfid_matches_seeded_global_rng(kid_feats, global_np_rng):
    f1, f2 = (f.astype(np.float64) for f in kid_feats)
    global_np_rng(7)
    ref = cleanfid.kernel_distance(f1, f2, num_subsets=20, max_subset_size=100)
    ours = F.kid_cleanfid(f1, f2, subsets=20, subset_size=100, seed=7)[0]
    tol = kid_cleanfid_bound(f1, f2, 20, 100, 7)
    assert tol < 1e-9 * ours
    assert abs(ours - ref) <= 2 * tol


def test_kid_cleanfid_all_rows_does_not_depend_on_sampling(kid_feats, global_np_rng):
    f1, f2 = kid_feats[0].astype(np.float64), kid_feats[1][:300].astype(np.float64)
    global_np_rng(99)  # clean-fid permutes the rows with it; ours with seed 123
    ref = cleanfid.kernel_distance(f1, f2, num_subsets=1, max_subset_size=1000)  # m = 300 = n
    mean, std = F.kid_cleanfid(f1, f2, subsets=1, subset_size=1000, seed=123)
    tol = kid_cleanfid_bound(f1, f2, 1, 1000, None)  # any permutation: same exact value
    assert abs(mean - ref) <= 2 * tol
    assert std == 0.0  # np.std of one value is exactly 0
    ours_tf, _ = F.kid(f1, f2, subsets=1, subset_size=300)  # same estimator, same rows
    assert abs(ours_tf - ref) <= tol + kid_bound(f1, f2, 1, 300, 2020, np.float64)[0]


def test_kid_closed_form_sanity():
    rng = np.random.default_rng(11)
    a = rng.standard_normal((600, 32)).astype(np.float32)
    b = rng.standard_normal((600, 32)).astype(np.float32)
    same, _ = F.kid(a, b, subsets=10, subset_size=300, dtype=np.float64)
    shifted, _ = F.kid(a, b + 1.0, subsets=10, subset_size=300, dtype=np.float64)
    assert abs(same) < 0.02
    assert shifted > 1.0 and shifted > 50 * abs(same)


def test_kid_too_few_rows_names_the_counts(kid_feats):
    f1, f2 = kid_feats
    with pytest.raises(MetricInputError, match=r"feats1: 300 rows, feats2: 400 rows"):
        F.kid(f1, f2, subset_size=1000)
    with pytest.raises(MetricInputError, match="dim"):
        F.kid(f1, f2[:, :10], subset_size=10)


# ---------------------------------------------------------------- Inception Score

@pytest.mark.parametrize("seed", [2020, None])
def test_inception_score_matches_torch_fidelity(seed):
    logits = (np.random.default_rng(20).standard_normal((1003, 40)) * 3).astype(np.float32)
    ours = F.inception_score(logits, splits=10, shuffle_seed=seed)
    ref = metric_isc.isc_features_to_metric(torch.from_numpy(logits), splits=10,
                                            shuffle=seed is not None, rng_seed=seed or 0)
    assert ours[0] == pytest.approx(ref["inception_score_mean"], rel=1e-6)
    assert ours[1] == pytest.approx(ref["inception_score_std"], rel=1e-6)


def test_inception_score_closed_forms():
    assert F.inception_score(np.zeros((100, 7)))[0] == pytest.approx(1.0, abs=1e-12)
    classes = 8
    logits = np.eye(classes)[np.arange(800) % classes] * 60.0  # every split holds each class
    mean, std = F.inception_score(logits, splits=10, shuffle_seed=None)
    assert mean == pytest.approx(classes, rel=1e-6) and std < 1e-6
    assert F.inception_score_adm(logits, split_size=80) == pytest.approx(classes, rel=1e-5)


def _adm_is_transcription(logits: np.ndarray, split_size: int) -> float:
    x = logits.astype(np.float32)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    preds = e / e.sum(axis=1, keepdims=True)
    scores = []
    for i in range(0, len(preds), split_size):
        part = preds[i:i + split_size]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores))


def test_inception_score_adm_definition():
    logits = (np.random.default_rng(21).standard_normal((1234, 30)) * 2).astype(np.float32)
    got = F.inception_score_adm(logits, split_size=500)  # splits 500, 500, 234 (last partial)
    assert got == pytest.approx(_adm_is_transcription(logits, 500), rel=1e-6)
    assert F.inception_score(logits, split_size=500)[0] == got
    # Consecutive splits of N/10 rows without shuffle = torch-fidelity without shuffle.
    even = logits[:1000]
    ref = F.inception_score(even, splits=10, shuffle_seed=None)[0]
    assert F.inception_score_adm(even, split_size=100) == pytest.approx(ref, rel=1e-5)


def test_inception_score_rejects_bad_input():
    with pytest.raises(MetricInputError, match="at least 10 rows"):
        F.inception_score(np.zeros((5, 3)))
    with pytest.raises(MetricInputError, match="NaN"):
        F.inception_score(np.full((20, 3), np.nan))


# ---------------------------------------------------------------- precision / recall

@pytest.fixture(scope="module")
def pr_feats() -> tuple[np.ndarray, np.ndarray]:
    # Multiples of 1/8 below 8, in 24 dims: every product is a multiple of 1/64 and every dot
    # product and squared norm an integer below 2^24 times 1/64, so the float32 (and float16
    # inputs') matmuls and sums are EXACT whatever BLAS, kernel, order or thread count computes
    # them; float16 and sqrt roundings are IEEE, correctly rounded. So the distances, and with
    # them precision/recall, are the same numbers on every machine and can be compared exactly.
    rng = np.random.default_rng(30)
    real = np.abs(rng.standard_normal((700, 24)))
    fake = np.abs(rng.standard_normal((900, 24))) * 1.2 + 0.1
    real, fake = (np.minimum(np.round(x * 8), 63).astype(np.float32) / 8 for x in (real, fake))
    return real, fake


@pytest.mark.parametrize("block", [10000, 256])
def test_precision_recall_matches_torch_fidelity(pr_feats, block):
    real, fake = pr_feats
    ours = F.precision_recall(real, fake, k=3, mode="torch-fidelity", block_size=block)
    ref = metric_prc.prc_features_to_metric(torch.from_numpy(fake), torch.from_numpy(real),
                                            prc_neighborhood=3, prc_batch_size=block,
                                            save_cpu_ram=False, verbose=False)
    assert ours == (ref["precision"], ref["recall"])
    part = metric_prc.calculate_precision_recall_part(torch.from_numpy(fake),
                                                      torch.from_numpy(real), 3, block)
    assert ours == part
    assert 0.05 < ours[0] < 0.95 and 0.05 < ours[1] < 0.95  # not a degenerate case


def _adm_dist_np(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u16, v16 = u.astype(np.float16), v.astype(np.float16)
    with np.errstate(over="ignore", invalid="ignore"):  # float16 overflow is the point here
        nu = (u16 * u16).astype(np.float32).sum(1).astype(np.float16)[:, None]
        nv = (v16 * v16).astype(np.float32).sum(1).astype(np.float16)[None, :]
        mm = (u16.astype(np.float32) @ v16.astype(np.float32).T).astype(np.float16)
        d = np.maximum(nu - 2 * mm + nv, np.float16(0))
    if np.isfinite(d).all():
        return d.astype(np.float32)
    nu32, nv32 = (u * u).sum(1)[:, None], (v * v).sum(1)[None, :]
    return np.maximum(nu32 - 2 * (u @ v.T) + nv32, 0).astype(np.float32)


def _adm_pr_dense(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    r_real = np.partition(_adm_dist_np(real, real), k, axis=1)[:, k]
    r_fake = np.partition(_adm_dist_np(fake, fake), k, axis=1)[:, k]
    d = _adm_dist_np(real, fake)
    precision = (d <= r_real[:, None]).any(axis=0).astype(np.float64).mean()
    recall = (d <= r_fake[None, :]).any(axis=1).astype(np.float64).mean()
    return float(precision), float(recall)


@pytest.mark.parametrize("block,scale", [(10000, 1.0), (128, 1.0), (10000, 256.0)])
def test_precision_recall_adm_matches_dense_numpy(pr_feats, block, scale):
    # scale 256 (a power of two: still exact) overflows float16: the float32 fallback
    real, fake = (x * np.float32(scale) for x in pr_feats)
    ours = F.precision_recall(real, fake, k=3, mode="adm", block_size=block)
    assert ours == _adm_pr_dense(real, fake, 3)
    if scale > 1:
        u = torch.from_numpy(real[:5])
        assert F.adm_pairwise_distances(u, u).dtype == torch.float32  # float32 fallback taken


def test_precision_recall_closed_forms():
    # Not exact arithmetic but wide margins: a point's float16 distance to its own copy is
    # rounding (a few float16 ulps of |a|^2 <= ~100, i.e. < 1) against 3rd-neighbour radii of
    # ~15 in 16 dims; the shifted set lies ~4e6 away (float32 fallback after float16 overflow).
    rng = np.random.default_rng(31)
    a = rng.standard_normal((200, 16)).astype(np.float32)
    for mode in ("adm", "torch-fidelity"):
        assert F.precision_recall(a, a.copy(), mode=mode) == (1.0, 1.0)
        assert F.precision_recall(a, a + 1000.0, mode=mode, block_size=64) == (0.0, 0.0)


def test_precision_recall_rejects_bad_input(pr_feats):
    real, fake = pr_feats
    with pytest.raises(MetricInputError, match="at least 4 rows"):
        F.precision_recall(real[:3], fake)
    with pytest.raises(MetricInputError, match="mode"):
        F.precision_recall(real, fake, mode="sklearn")
    with pytest.raises(MetricInputError, match="dim"):
        F.precision_recall(real, fake[:, :5])
