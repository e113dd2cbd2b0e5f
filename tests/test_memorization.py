"""dgm-eval's memorization metrics (ct, ct_test, ct_modified, fls, fls_overfit) vs a reference.

The reference is `tests/_dgm_eval.py`, an independent float64 implementation of dgm-eval's
protocol (as layer6ai-labs/dgm-eval at d57a6d2 runs C_T and FLS) written from the definitions
of Meehan et al. 2020 and Jiralerspong et al. 2023. Rows: 8×8 RGB patches of scikit-image's
sample photos (192 values, float64): the training and test sets from the same photo, the
generated set from that photo, other photos, and, in the copying case, a third of copies of
training rows.

ct: the protocol's PCA (randomized solver at these sizes) and KMeans draw from numpy's global
state; the reference runs after ``np.random.seed(s)``, diffbench with ``RandomState(s)``: the
cells are the same (asserted through the value). The nearest-training distances differ only by
rounding (diffbench: |x|² + |y|² - 2x·y, the reference: squared differences), and the U
statistics count pairs by rank, so the value is exact unless a generated and a test distance
tie within that rounding (~1e-12 relative here; such a tie would fail this test, not pass it
silently); the z-scores and the weighted mean are a handful of float64 operations: 1e-12.

fls: both sides in float64 on the CPU. The reference differentiates the KDE likelihood with
autograd, diffbench sums the same gradient in closed form block by block; the gradients agree
within ~M·u relative (sums of M terms), Adam's update is continuous in its gradient history, so
after 100 steps the log-bandwidths, NLLs and the score agree to ~1e-10; 1e-7 relative is asked.
fls_overfit counts signs of log-likelihood differences: equal unless one is within 1e-9 of 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from diffbench.metrics import memorization as M
from tests import _dgm_eval as ref
from tests.test_dgm_eval import _distinct, patches


@pytest.fixture(scope="module")
def sets() -> dict[str, np.ndarray]:
    astronaut = skimage.data.astronaut()
    rows = _distinct(patches(astronaut, 1400, 20), 1300)
    train, test = rows[:700], rows[700:1000]
    gen = np.concatenate([rows[1000:1200], patches(skimage.data.coffee(), 100, 21)])
    rng = np.random.RandomState(22)
    copying = np.concatenate([gen[:200], train[rng.choice(len(train), 100, replace=False)]])
    return {"train": train, "test": test, "gen": gen, "copying": copying}


@pytest.mark.parametrize("which", ["ct", "ct_test", "ct_modified"])
def test_ct_equals_dgm_eval(sets, which):
    fn = {"ct": ref.compute_ct_score, "ct_test": ref.compute_ct_score_mode,
          "ct_modified": ref.compute_ct_score_mem}[which]
    mine = getattr(M, which)
    for gen in (sets["gen"], sets["copying"]):
        np.random.seed(4)
        want = float(fn(sets["train"], sets["test"], gen))
        got = mine(sets["train"], sets["test"], gen, seed=4)
        # the z-scores are functions of integer ranks and cell counts: both sides rank the same
        # float64 distances (the same cells from the same draws), so only a few float64
        # operations differ (~1e-15 relative); 1e-12 leaves a thousandfold margin
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), (which, got, want)


def test_ct_sees_copying(sets):
    fresh = M.ct(sets["train"], sets["test"], sets["gen"], seed=4)
    copied = M.ct(sets["train"], sets["test"], sets["copying"], seed=4)
    assert copied < fresh - 2  # copies sit closer to the training set than test data does


def test_u_statistic_is_scipys():
    from scipy.stats import mannwhitneyu

    rng = np.random.RandomState(0)
    q, p = rng.randint(0, 20, 37).astype(float), rng.randint(0, 20, 51).astype(float)  # ties
    assert M._u_statistic(q, p) == mannwhitneyu(q, p, alternative="less").statistic


def _reference_fls(train, test, gen, seed, reduced_n):
    np.random.seed(seed)
    inputs = ref.fls_inputs(train, test, gen, reduced_n=reduced_n)
    return ref.compute_fls(*inputs), ref.compute_fls_overfit(*inputs), inputs


@pytest.mark.parametrize("which", ["gen", "copying"])
def test_fls_equals_dgm_eval_float64(sets, which):
    want_fls, want_overfit, inputs = _reference_fls(sets["train"], sets["test"], sets[which],
                                                    seed=9, reduced_n=150)
    for a, b in zip(inputs, M.fls_draw(sets["train"], sets["test"], sets[which],
                                       reduced_n=150, seed=9), strict=True):
        np.testing.assert_array_equal(a, b)  # the same draws
    got = M.fls(sets["train"], sets["test"], sets[which], reduced_n=150, seed=9, block=64)
    # the gradient sums differ only in order (blocks of 64 vs whole): n·ε ≈ 3e-14 relative per
    # step; 100 Adam steps can amplify that, and no analytic bound of the amplification is
    # written here: 1e-7 is about 3e6 times the per-step rounding (not a derived bound)
    assert got["fls"] == pytest.approx(want_fls, rel=1e-7)
    assert got["fls_overfit"] == want_overfit
    assert got["rows"] == 150


def test_fls_overfit_sees_copying(sets):
    fresh = M.fls(sets["train"], sets["test"], sets["gen"], reduced_n=150, seed=9)
    copied = M.fls(sets["train"], sets["test"], sets["copying"], reduced_n=150, seed=9)
    # the copies of drawn training rows are likelier under training data than test data
    assert copied["fls_overfit"] > fresh["fls_overfit"] + 2


def test_fls_bandwidth_fit_without_cache_is_the_same(sets):
    x = torch.as_tensor(sets["train"][:120])
    c = torch.as_tensor(sets["gen"][:80])
    kept = M.fit_log_bandwidths(x, c, steps=60, block=50)
    again = M.fit_log_bandwidths(x, c, steps=60, block=50, cache=False)
    torch.testing.assert_close(kept, again, rtol=0, atol=0)
