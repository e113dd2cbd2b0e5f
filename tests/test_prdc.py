"""PRDC: diffbench's blocked precision/recall/density/coverage vs ``prdc.compute_prdc``.

Both sides compute each distance as scikit-learn does (float64 products, float32 result for
float32 inputs), so every comparison sees the same value and the four numbers are equal, not
merely close; the tests ask for equality. Ties between a distance and a radius (where a last-bit
difference in a dot product could flip a strict ``<``) have probability ~1e-9 per pair here.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from prdc import compute_prdc  # a test dependency (pyproject [test])

from diffbench.errors import MetricInputError
from diffbench.metrics import functional as F
from diffbench.metrics.representation import PRDC, prdc


def _reference(real, fake, k):
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        return {key: float(v) for key, v in compute_prdc(real, fake, nearest_k=k).items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 5])
def test_prdc_equals_compute_prdc(dtype, k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(530, 48)).astype(dtype)
    fake = (rng.normal(size=(610, 48)) * 1.15 + 0.2).astype(dtype)
    ours = F.prdc(real, fake, nearest_k=k, block_size=128)  # several blocks each way
    assert ours == _reference(real, fake, k)


def test_prdc_blocks_do_not_change_the_numbers():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(300, 16)).astype(np.float32)
    fake = rng.normal(size=(200, 16)).astype(np.float32)
    assert F.prdc(real, fake, block_size=37) == F.prdc(real, fake, block_size=4096)


def test_prdc_known_cases():
    # identical sets: every point lies in its twin's ball (distance 0 < radius)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8))
    same = F.prdc(x, x.copy(), nearest_k=3)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    # far-away fakes: nothing is covered, nothing is precise
    far = F.prdc(x, x + 1e3, nearest_k=3)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_spec_and_subsample():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(40, 6)).astype(np.float32)
    fake = rng.normal(size=(45, 6)).astype(np.float32)
    out = prdc(real, fake, nearest_k=5)
    assert {o.key for o in PRDC.outputs} == set(out) == {"precision", "recall", "density",
                                                          "coverage"}
    assert out["density"].value == _reference(real, fake, 5)["density"]
    sub = prdc(real, fake, nearest_k=5, subsample=30, seed=7)
    rs = np.random.RandomState(7)
    r_idx = np.sort(rs.choice(40, 30, replace=False))
    f_idx = np.sort(rs.choice(45, 30, replace=False))
    assert sub["coverage"].value == _reference(real[r_idx], fake[f_idx], 5)["coverage"]
    assert sub["coverage"].details["rows"] == [30, 30]


def test_prdc_refuses_too_few_rows():
    with pytest.raises(MetricInputError, match="nearest_k=5"):
        F.prdc(np.zeros((5, 3)), np.zeros((9, 3)), nearest_k=5)
    with pytest.raises(MetricInputError, match="dim"):
        F.prdc(np.zeros((9, 3)), np.zeros((9, 4)))
