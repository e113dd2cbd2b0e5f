"""Feature rows as every metric takes them: a finite, non-empty 2-D array, one line otherwise.

The one check of a metric's input rows (`feature_rows`, `feature_pair`), below the metric
modules that use it (`functional`, `knn`, `dgm`).
"""

from __future__ import annotations

import numpy as np

from diffbench.errors import MetricInputError


def check_finite(x: np.ndarray, what: str) -> None:
    """Refuse NaN/inf in `x` with one line naming `what`."""
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise MetricInputError(
            f"{what} contains {bad} NaN/inf value(s); check the features or statistics that "
            "produced it (e.g. recompute them, or drop corrupt images)")


def feature_rows(x: object, what: str, dtype: type | None = None) -> np.ndarray:
    """`x` as a finite non-empty 2-D array of rows (one line naming `what` otherwise): floats of
    at least 32 bits as they are (integers and float16 in float32), or all in `dtype`."""
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise MetricInputError(f"{what} must be a non-empty 2-D array (rows, dim); got shape "
                               f"{arr.shape}")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    elif not np.issubdtype(arr.dtype, np.floating) or arr.dtype.itemsize < 4:
        arr = arr.astype(np.float32)  # integers and float16 are computed in float32
    check_finite(arr, what)
    return arr


def feature_pair(a: object, b: object, names: tuple[str, str],
                 dtype: type | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two sets of rows (`feature_rows`) of one feature dimension."""
    x, y = feature_rows(a, names[0], dtype), feature_rows(b, names[1], dtype)
    if x.shape[1] != y.shape[1]:
        raise MetricInputError(f"{names[0]} has dim {x.shape[1]} but {names[1]} has dim "
                               f"{y.shape[1]}; both must come from the same extractor layer")
    return x, y
