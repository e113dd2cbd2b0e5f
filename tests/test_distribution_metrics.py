"""Metric glue: the small-sample FID form equals the general one; input checks are clear."""

from __future__ import annotations

import numpy as np
import pytest

from diffbench.errors import MetricInputError
from diffbench.metrics import functional as F
from diffbench.metrics.distribution import fid_from_rows
from diffbench.protocols import TORCH_FIDELITY
from diffbench.resolve import resolve_task
from diffbench.scoring.distribution import compute_metric
from diffbench.scoring.sides import Side
from tests._rounding import fid_bound


@pytest.mark.parametrize("n, dim", [(20, 50), (50, 50), (80, 30)])
def test_fid_from_rows_equals_frechet_distance(n, dim):
    rs = np.random.RandomState(n)
    ref = rs.randn(200, dim) @ rs.randn(dim, dim) * 0.3
    rows = rs.randn(n, dim) + 0.5
    mu1, s1 = ref.mean(0), np.cov(ref, rowvar=False)
    s2 = np.cov(rows, rowvar=False)
    expected = F.frechet_distance(mu1, s1, rows.mean(0), s2)
    # two float64 algorithms, each within fid_bound of exact (n <= dim: zero eigenvalues,
    # whose square roots carry ~sqrt(d u ||S1|| ||S2||), see tests/_rounding.py)
    diff = mu1 - rows.mean(0)
    assert abs(fid_from_rows(mu1, s1, rows) - expected) <= 2 * fid_bound(s1, s2, diff @ diff)


def test_too_few_images_are_clear():
    one = Side(1, {"pool3": (np.zeros(3), np.eye(3))})
    two = Side(5, {"pool3": (np.zeros(3), np.eye(3))})
    with pytest.raises(MetricInputError, match="at least 2 generated images"):
        compute_metric(resolve_task(["fid"], TORCH_FIDELITY)["fid"], "pool3", two, one, "fp")
    small = Side(10, banks={"pool3": np.zeros((10, 4), np.float32)})
    with pytest.raises(MetricInputError, match="subset size 1000 needs at least 1000"):
        compute_metric(resolve_task(["kid"], TORCH_FIDELITY)["kid"], "pool3", small, small, "fp")


def test_rank_deficient_fid_is_flagged():
    rs = np.random.RandomState(0)
    a, b = rs.randn(10, 16), rs.randn(10, 16)
    side = lambda x: Side(len(x), {"pool3": (x.mean(0), np.cov(x, rowvar=False))})  # noqa: E731
    fid = resolve_task(["fid"], TORCH_FIDELITY)["fid"]
    out = compute_metric(fid, "pool3", side(a), side(b), "fp")["fid"]
    assert "rank-deficient" in out["details"]["warning"]
