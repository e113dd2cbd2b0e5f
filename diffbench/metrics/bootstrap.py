"""Bootstrap confidence intervals over the generated set.

The generated images are the random part of a benchmark run (the reference set is fixed), so
the interval comes from resampling the generated features with replacement and recomputing the
metric. The interval is the percentile interval of the bootstrap values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from diffbench.errors import MetricInputError
from diffbench.log import progress


def bootstrap_values(fn: Callable[[np.ndarray], float], fake_feats: object, n_boot: int,
                     seed: int) -> np.ndarray:
    """Metric values on ``n_boot`` resamples (with replacement) of the rows of ``fake_feats``."""
    feats = np.asarray(fake_feats)
    if feats.ndim < 1 or len(feats) < 2:
        raise MetricInputError(f"bootstrap needs at least 2 generated rows, got shape {feats.shape}")
    if n_boot < 2:
        raise MetricInputError(f"bootstrap needs n_boot >= 2, got {n_boot}")
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot, dtype=np.float64)
    for b in progress(range(n_boot), desc="bootstrap", unit="resamples"):
        idx = rng.integers(0, len(feats), size=len(feats))
        values[b] = float(fn(feats[idx]))
    return values


def bootstrap_ci(fn: Callable[[np.ndarray], float], fake_feats: object, n_boot: int, seed: int,
                 alpha: float = 0.05) -> tuple[float, float, float]:
    """(low, high, std) of a metric: percentile CI at level 1-alpha and bootstrap std (ddof=1)."""
    if not 0.0 < alpha < 1.0:
        raise MetricInputError(f"bootstrap alpha must be in (0, 1), got {alpha}")
    values = bootstrap_values(fn, fake_feats, n_boot, seed)
    if not np.isfinite(values).all():
        raise MetricInputError("the metric returned NaN/inf on a bootstrap resample; the "
                               "generated set is probably too small for it")
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high), float(np.std(values, ddof=1))


BOOTSTRAP_SEED = 0  # every interval diffbench records resamples with this seed


def interval(fn: Callable[[np.ndarray], float], rows: object, n_boot: int,
             over: str) -> dict[str, Any] | None:
    """A record's ``ci`` block: the 95% percentile bootstrap of `fn` over the rows of `rows`.

    `over` names what is resampled (``the generated set``, ``subjects``, ...); None when
    `n_boot` is 0.
    """
    if not n_boot:
        return None
    low, high, _ = bootstrap_ci(fn, rows, n_boot, BOOTSTRAP_SEED)
    return {"low": low, "high": high, "level": 0.95, "method": f"percentile bootstrap over {over}",
            "n": n_boot}
