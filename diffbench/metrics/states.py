"""Mergeable metric states: feed batches, merge shards or ranks, read the statistics.

`GaussianMoments` keeps a count, a float64 sum and a float64 sum of outer products, so its
memory does not grow with the number of rows and two states merge by addition (also through an
all-reduce of `to_dict`'s arrays). `FeatureBank` keeps the float32 rows themselves, for metrics
that need every feature (KID, precision/recall).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from diffbench.errors import MetricInputError

_BLOCK_ROWS = 4096


def _rows(feats: object, dim: int | None, what: str) -> np.ndarray:
    x = np.asarray(feats)
    if x.ndim != 2:
        raise MetricInputError(f"{what}.update expects a 2-D array (rows, dim); got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise MetricInputError(f"{what}.update got dim {x.shape[1]} but the state holds dim {dim}; "
                               "all batches must come from the same extractor layer")
    if not np.isfinite(x).all():
        raise MetricInputError(f"{what}.update got NaN/inf features; check the images and the "
                               "extractor that produced them")
    return x


class GaussianMoments:
    """Count, float64 sum and float64 sum of outer products of feature rows (for FID)."""

    def __init__(self, dim: int) -> None:
        """Empty state for features of dimension ``dim``."""
        if dim < 1:
            raise MetricInputError(f"GaussianMoments needs dim >= 1, got {dim}")
        self.dim = int(dim)
        self.n = 0
        self.sum = np.zeros(self.dim, dtype=np.float64)
        self.outer = np.zeros((self.dim, self.dim), dtype=np.float64)

    def update(self, feats: object) -> GaussianMoments:
        """Add a batch of rows (any float dtype; accumulated in float64 blocks of X^T X)."""
        x = _rows(feats, self.dim, "GaussianMoments")
        for start in range(0, len(x), _BLOCK_ROWS):
            block = np.ascontiguousarray(x[start:start + _BLOCK_ROWS], dtype=np.float64)
            self.sum += block.sum(axis=0)
            self.outer += block.T @ block
        self.n += len(x)
        return self

    def merge(self, other: GaussianMoments) -> GaussianMoments:
        """Add another state's rows into this one (in place) and return self."""
        if not isinstance(other, GaussianMoments) or other.dim != self.dim:
            raise MetricInputError("GaussianMoments.merge needs another GaussianMoments of the "
                                   f"same dim ({self.dim})")
        self.n += other.n
        self.sum += other.sum
        self.outer += other.outer
        return self

    def __add__(self, other: GaussianMoments) -> GaussianMoments:
        """New state holding the rows of both."""
        return self.copy().merge(other)

    def copy(self) -> GaussianMoments:
        """Independent copy of this state."""
        return GaussianMoments.from_dict(self.to_dict())

    def mean(self) -> np.ndarray:
        """Mean of the rows (float64)."""
        if self.n < 1:
            raise MetricInputError("GaussianMoments has no rows; feed features before reading mu")
        return self.sum / self.n

    def cov(self) -> np.ndarray:
        """Covariance of the rows with ddof=1, as np.cov(rowvar=False) (float64)."""
        if self.n < 2:
            raise MetricInputError(f"a covariance needs at least 2 rows, the state has {self.n}")
        mu = self.mean()
        c = (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return (c + c.T) / 2

    def to_dict(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays (n, sum, outer): sum them across ranks, or np.savez them."""
        return {"n": np.array([self.n], dtype=np.int64), "sum": self.sum.copy(),
                "outer": self.outer.copy()}

    @classmethod
    def from_dict(cls, state: Mapping[str, np.ndarray]) -> GaussianMoments:
        """Rebuild a state from `to_dict`'s arrays (checked for shape and consistency)."""
        try:
            n = int(np.asarray(state["n"]).reshape(-1)[0])
            s = np.asarray(state["sum"], dtype=np.float64)
            outer = np.asarray(state["outer"], dtype=np.float64)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise MetricInputError(f"GaussianMoments state needs arrays n, sum, outer ({exc})") from exc
        if s.ndim != 1 or outer.shape != (s.shape[0], s.shape[0]) or n < 0:
            raise MetricInputError(f"GaussianMoments state has inconsistent shapes: sum {s.shape},"
                                   f" outer {outer.shape}, n {n}")
        out = cls(s.shape[0])
        out.n, out.sum, out.outer = n, s.copy(), outer.copy()
        return out


class FeatureBank:
    """All feature rows as float32, for metrics that need every row (KID, precision/recall)."""

    def __init__(self, dim: int | None = None) -> None:
        """Empty bank; ``dim`` is fixed by the first update when not given."""
        self.dim = dim
        self._chunks: list[np.ndarray] = []
        self.n = 0

    def update(self, feats: object) -> FeatureBank:
        """Append a batch of rows (stored as a float32 copy)."""
        x = _rows(feats, self.dim, "FeatureBank")
        self.dim = x.shape[1]
        self._chunks.append(np.array(x, dtype=np.float32, copy=True))
        self.n += len(x)
        return self

    def merge(self, other: FeatureBank) -> FeatureBank:
        """Append another bank's rows after this bank's rows (in place) and return self."""
        if not isinstance(other, FeatureBank):
            raise MetricInputError("FeatureBank.merge needs another FeatureBank")
        if other.n:
            self.update(other.array())
        return self

    def __add__(self, other: FeatureBank) -> FeatureBank:
        """New bank holding this bank's rows, then the other's."""
        return FeatureBank(self.dim).merge(self).merge(other)

    def __len__(self) -> int:
        """Number of rows."""
        return self.n

    def array(self) -> np.ndarray:
        """All rows as one (n, dim) float32 array, in the order they were added."""
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks, axis=0)]
        if not self._chunks:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        return self._chunks[0]

    def to_dict(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays ({"feats": rows}) for gathering across ranks or saving."""
        return {"feats": self.array()}

    @classmethod
    def from_dict(cls, state: Mapping[str, np.ndarray]) -> FeatureBank:
        """Rebuild a bank from `to_dict`'s arrays."""
        if "feats" not in state:
            raise MetricInputError("FeatureBank state needs an array 'feats'")
        return cls().update(state["feats"])
