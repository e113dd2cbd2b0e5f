"""Pareto fronts: sets with a known front, tie rules, directions, sweep records."""

from __future__ import annotations

import math
import random

import pytest

from diffbench.errors import MetricInputError
from diffbench.pareto import pareto_front, sweep_front


def brute_force(points, x_higher=True, y_higher=True):
    """The definition, O(n²): not dominated by any finite point."""
    sx, sy = (1 if x_higher else -1), (1 if y_higher else -1)

    def dominates(p, q):
        ge = sx * p[0] >= sx * q[0] and sy * p[1] >= sy * q[1]
        return ge and (sx * p[0] > sx * q[0] or sy * p[1] > sy * q[1])

    ok = [i for i, p in enumerate(points) if all(map(math.isfinite, p))]
    return [i for i in ok if not any(dominates(points[j], points[i]) for j in ok)]


def test_known_front_both_higher():
    # The staircase (1,5) (2,4) (3,3.5) (4,2) (5,1); the rest lies under it.
    points = [(1, 5), (2, 4), (3, 3.5), (4, 2), (5, 1), (1, 1), (2, 3.9), (3.9, 2), (0, 0)]
    assert pareto_front(points) == [0, 1, 2, 3, 4]


def test_directions_flip_the_front():
    points = [(1, 1), (2, 2), (1, 2), (2, 1)]
    assert pareto_front(points) == [1]  # both higher: (2,2)
    assert pareto_front(points, x_higher=False, y_higher=False) == [0]  # both lower: (1,1)
    assert pareto_front(points, x_higher=False) == [2]  # low x, high y: (1,2)
    assert pareto_front(points, y_higher=False) == [3]  # high x, low y: (2,1)
    # FID-like cost on x (lower is better) against a score on y.
    fid_vs_score = [(2.0, 0.60), (2.5, 0.70), (3.0, 0.65), (4.0, 0.80), (1.8, 0.50)]
    assert pareto_front(fid_vs_score, x_higher=False) == [0, 1, 3, 4]


def test_tie_rules():
    # Identical points do not dominate each other: both stay on the front.
    assert pareto_front([(1, 1), (1, 1)]) == [0, 1]
    # Equal on one axis and worse on the other: dominated.
    assert pareto_front([(1, 2), (1, 1)]) == [0]
    assert pareto_front([(2, 1), (1, 1)]) == [0]
    # Duplicates of a dominated point stay dominated; duplicates on the front all stay.
    assert pareto_front([(3, 3), (1, 1), (1, 1), (3, 3), (0, 4)]) == [0, 3, 4]
    # Non-finite coordinates are never on the front and dominate nothing.
    assert pareto_front([(math.nan, 9), (1, 1), (math.inf, 0), (0, -math.inf)]) == [1]
    assert pareto_front([]) == []


@pytest.mark.parametrize("seed", range(20))
def test_matches_the_definition_on_random_sets(seed):
    rng = random.Random(seed)
    # Few distinct values so that ties on each axis are frequent.
    points = [(rng.randint(0, 6), rng.randint(0, 6)) for _ in range(rng.randint(1, 40))]
    for xh in (True, False):
        for yh in (True, False):
            assert pareto_front(points, xh, yh) == brute_force(points, xh, yh)


def rec(value, clip_t, dino, **extra):
    return {"run_id": f"r{value}", "sweep": {"rg_scale": value},
            "metrics": {"clip_t": {"value": clip_t}, "dino": {"value": dino}, **extra}}


def test_sweep_front_dict():
    records = [rec(3, 0.25, 0.69), rec(0, 0.30, 0.60), rec(1, 0.29, 0.66), rec(2, 0.27, 0.70),
               rec(4, 0.24, 0.68)]
    front = sweep_front(records, "clip_t", "dino", "rg_scale")
    assert front["x"] == "clip_t" and front["y"] == "dino" and front["param"] == "rg_scale"
    assert front["x_higher"] is True and front["y_higher"] is True
    assert [p["param_value"] for p in front["points"]] == [0, 1, 2, 3, 4]  # sorted by value
    assert [p["on_front"] for p in front["points"]] == [True, True, True, False, False]
    assert front["points"][0] == {"param_value": 0, "x": 0.30, "y": 0.60, "on_front": True}


def test_sweep_front_uses_recorded_direction():
    records = [{"run_id": str(v), "sweep": {"cfg": v},
                "metrics": {"fid": {"value": f, "higher_is_better": False},
                            "custom": {"value": c, "higher_is_better": True}}}
               for v, f, c in ((1.0, 3.0, 0.5), (1.5, 2.0, 0.6), (2.0, 2.5, 0.7), (3.0, 2.6, 0.65))]
    front = sweep_front(records, "fid", "custom", "cfg")
    assert front["x_higher"] is False
    assert [p["on_front"] for p in front["points"]] == [False, True, True, False]


def test_sweep_front_errors():
    with pytest.raises(MetricInputError, match="'dino' is missing"):
        sweep_front([{"run_id": "a", "sweep": {"s": 1}, "metrics": {"clip_t": {"value": 1}}}],
                     "clip_t", "dino", "s")
    with pytest.raises(MetricInputError, match="--sweep s="):
        sweep_front([rec(1, 0.1, 0.2)], "clip_t", "dino", "s")
    with pytest.raises(MetricInputError, match="rg_scale=1"):
        sweep_front([rec(1, 0.1, 0.2), rec(1, 0.2, 0.1)], "clip_t", "dino", "rg_scale")
    with pytest.raises(MetricInputError, match="no direction known"):
        sweep_front([{"run_id": "a", "sweep": {"s": 1},
                      "metrics": {"mystery": {"value": 1}, "dino": {"value": 1}}}],
                    "mystery", "dino", "s")
    with pytest.raises(MetricInputError, match="no results"):
        sweep_front([], "clip_t", "dino", "s")
