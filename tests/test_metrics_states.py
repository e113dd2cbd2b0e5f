"""Mergeable metric states (GaussianMoments, FeatureBank) and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from diffbench.errors import MetricInputError
from diffbench.metrics import functional as F
from diffbench.metrics.bootstrap import bootstrap_ci, bootstrap_values
from diffbench.metrics.states import FeatureBank, GaussianMoments


@pytest.fixture(scope="module")
def feats() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((5000, 64)) @ rng.standard_normal((64, 64)) * 0.2 + 0.4).astype(
        np.float32)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_moments_match_numpy(feats):
    state = GaussianMoments(64).update(feats)
    assert state.n == 5000
    assert _rel(state.mean(), feats.astype(np.float64).mean(axis=0)) < 1e-12
    assert _rel(state.cov(), np.cov(feats, rowvar=False)) < 1e-12


def test_moments_merge_of_halves_equals_whole(feats):
    whole = GaussianMoments(64).update(feats)
    first = GaussianMoments(64).update(feats[:1234])
    second = GaussianMoments(64)
    for start in range(1234, 5000, 1000):  # uneven batches
        second.update(feats[start:start + 1000])
    for merged in (first + second, GaussianMoments(64).merge(first).merge(second)):
        assert merged.n == whole.n
        assert _rel(merged.mean(), whole.mean()) < 1e-12
        assert _rel(merged.cov(), whole.cov()) < 1e-12
    assert first.n == 1234  # __add__ leaves its operands alone


def test_moments_dict_roundtrip_and_allreduce(feats):
    shards = [GaussianMoments(64).update(part) for part in np.array_split(feats, 3)]
    dicts = [s.to_dict() for s in shards]
    summed = {key: sum(d[key] for d in dicts) for key in dicts[0]}  # what an all-reduce does
    reduced = GaussianMoments.from_dict(summed)
    whole = GaussianMoments(64).update(feats)
    assert reduced.n == 5000
    assert _rel(reduced.cov(), whole.cov()) < 1e-12
    loaded = GaussianMoments.from_dict(dict(whole.to_dict()))
    assert np.array_equal(loaded.outer, whole.outer) and loaded.n == whole.n
    with pytest.raises(MetricInputError, match="inconsistent"):
        GaussianMoments.from_dict({"n": np.array([3]), "sum": np.zeros(3), "outer": np.zeros((2, 2))})


def test_moments_memory_does_not_grow(feats):
    state = GaussianMoments(64)
    sizes = set()
    for _ in range(4):
        state.update(feats)
        sizes.add(sum(a.nbytes for a in state.to_dict().values()))
    assert len(sizes) == 1 and state.n == 20000


def test_moments_feed_frechet_distance(feats):
    shifted = feats[2500:] + np.float32(0.1)
    a = GaussianMoments(64).update(feats[:2500])
    b = GaussianMoments(64).update(shifted)
    got = F.frechet_distance(a.mean(), a.cov(), b.mean(), b.cov())
    x, y = feats[:2500].astype(np.float64), shifted.astype(np.float64)
    ref = F.frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert got == pytest.approx(ref, rel=1e-9)


def test_moments_errors():
    state = GaussianMoments(3)
    with pytest.raises(MetricInputError, match="at least 2 rows"):
        state.update(np.ones((1, 3))).cov()
    with pytest.raises(MetricInputError, match="dim 4"):
        state.update(np.ones((2, 4)))
    with pytest.raises(MetricInputError, match="NaN"):
        state.update(np.full((2, 3), np.inf))


def test_feature_bank_merge_and_order(feats):
    a = FeatureBank().update(feats[:10]).update(feats[10:30])
    b = FeatureBank(64).update(feats[30:100])
    merged = a + b
    assert merged.array().dtype == np.float32 and len(merged) == 100
    assert np.array_equal(merged.array(), feats[:100])
    assert len(a) == 30  # operands untouched
    assert np.array_equal(FeatureBank.from_dict(merged.to_dict()).array(), feats[:100])
    assert FeatureBank(8).array().shape == (0, 8)
    with pytest.raises(MetricInputError, match="dim"):
        a.update(np.ones((2, 5)))


def test_bootstrap_deterministic_and_covers_estimate():
    x = np.random.default_rng(1).standard_normal((500, 3))

    def fn(rows: np.ndarray) -> float:
        return float(rows[:, 0].mean())

    one = bootstrap_ci(fn, x, n_boot=300, seed=5)
    assert one == bootstrap_ci(fn, x, n_boot=300, seed=5)
    assert one != bootstrap_ci(fn, x, n_boot=300, seed=6)
    low, high, std = one
    assert low < fn(x) < high
    assert std == pytest.approx(x[:, 0].std() / np.sqrt(500), rel=0.2)  # standard error
    assert len(bootstrap_values(fn, x, 7, seed=0)) == 7


def test_bootstrap_errors():
    with pytest.raises(MetricInputError, match="n_boot"):
        bootstrap_ci(float, np.ones((5, 2)), n_boot=1, seed=0)
    with pytest.raises(MetricInputError, match="NaN"):
        bootstrap_ci(lambda r: float("nan"), np.ones((5, 2)), n_boot=3, seed=0)
