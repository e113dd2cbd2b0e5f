"""The specs of dgm-eval's memorization metrics (`diffbench.metrics.memorization`): ct, ct_test,
ct_modified, fls and fls_overfit, scored by the ``distribution`` family on the protocol's
features with the training set's rows beside the held-out test set's (``Needs.train``).

Each gets ``compute(train, test, fake)``. ``ct`` also writes the ``closest`` generated images
to a training image (at most ``closest`` of them: generated row, its nearest training row and
the distance, nearest first), which the scorer names by file and the HTML report shows as a
memorization gallery. ``fls`` and ``fls_overfit`` come from one fit of the KDE bandwidths; when
a task asks for both, the fit runs once (`_fls`). They run on the scorer's device (``device``,
float64 there as on the CPU).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from diffbench.errors import MetricInputError
from diffbench.metrics import dgm, memorization
from diffbench.metrics.args import Arg
from diffbench.metrics.spec import MetricSpec, Needs, Output, Shortfall, Value

_SEED = Arg("int", dgm.DGM_SEED, "seed of the draws dgm-eval leaves to numpy's global state "
            "(PCA, KMeans, FLS subsets)", minimum=0)
_CLOSEST = Arg("int", 16, "generated images closest to a training image kept in the record "
               "(the memorization gallery)", minimum=0)
_REDUCED_N = Arg("int", 10000, "at most this many rows per set (dgm-eval's reduced_n)",
                 minimum=2)
_DGM = "dgm-eval"


def _ct_shortfalls(n_real: int, n_fake: int, s: Mapping[str, Any]) -> list[Shortfall]:
    if n_real < memorization.CT_CELLS or n_fake <= memorization.CT_MIN_GENERATED:
        return [Shortfall(f" needs at least {memorization.CT_CELLS} test images and more than "
                          f"{memorization.CT_MIN_GENERATED} generated images (a cell counts "
                          f"when it holds more than {memorization.CT_MIN_GENERATED})")]
    return []


def _fls_shortfalls(n_real: int, n_fake: int, s: Mapping[str, Any]) -> list[Shortfall]:
    if n_real < 2 or n_fake < 2:
        return [Shortfall(" needs at least 2 test and 2 generated images")]
    return []


def closest_pairs(train: np.ndarray, fake: np.ndarray, k: int,
                  device: str = "cpu") -> list[dict[str, Any]]:
    """The `k` generated rows nearest to a training row: ``{fake, train, distance}`` (row
    indices, float64 L2 distance), nearest first (ties: lower generated index first)."""
    if k <= 0:
        return []
    dist, arg = dgm.nearest(fake, train, device=device)
    order = np.lexsort((np.arange(len(dist)), dist))[:k]
    return [{"fake": int(i), "train": int(arg[i]), "distance": float(dist[i])} for i in order]


def _finite_ct(name: str, value: float, n: int) -> float:
    """`value`, or a one-line error when no cell held enough rows to count (dgm-eval's NaN)."""
    if not np.isfinite(value):
        raise MetricInputError(
            f"{name}: none of the {memorization.CT_CELLS} cells of the training set holds more "
            f"than {memorization.CT_MIN_GENERATED} of the {n} images it tests; score more "
            "generated images")
    return value


def ct(train: np.ndarray, test: np.ndarray, fake: np.ndarray, *, seed: int, closest: int,
       device: str = "cpu") -> Value:
    """C_T, with the generated images closest to a training image in the details."""
    value = memorization.ct(train, test, fake, seed=seed, device=device)
    value = _finite_ct("ct", value, len(fake))
    return Value(value, details={"seed": seed, "rows": [len(train), len(test), len(fake)],
                                 "closest": closest_pairs(train, fake, closest, device)})


def ct_test(train: np.ndarray, test: np.ndarray, fake: np.ndarray, *, seed: int,
            device: str = "cpu") -> Value:
    """C_T with the test set split in two (mode collapse, not copying)."""
    value = memorization.ct_test(train, test, fake, seed=seed, device=device)
    return Value(_finite_ct("ct_test", value, len(fake)), details={"seed": seed})


def ct_modified(train: np.ndarray, test: np.ndarray, fake: np.ndarray, *, seed: int,
                device: str = "cpu") -> Value:
    """C_T with the training and generated sets swapped."""
    value = memorization.ct_modified(train, test, fake, seed=seed, device=device)
    return Value(_finite_ct("ct_modified", value, len(train)), details={"seed": seed})


_LAST: list[tuple[tuple, dict[str, float]]] = []  # the last fit (its inputs held, so ids hold)


def _fls(train: np.ndarray, test: np.ndarray, fake: np.ndarray, reduced_n: int,
         seed: int, device: str) -> dict[str, float]:
    """`memorization.fls`, fitted once for fls and fls_overfit of the same rows."""
    key = (train, test, fake, reduced_n, seed, device)
    if _LAST and all(a is b if isinstance(a, np.ndarray) else a == b
                     for a, b in zip(_LAST[0][0], key, strict=True)):
        return _LAST[0][1]
    out = memorization.fls(train, test, fake, reduced_n=reduced_n, seed=seed, device=device)
    _LAST[:] = [(key, out)]
    return out


def fls(train: np.ndarray, test: np.ndarray, fake: np.ndarray, *, reduced_n: int,
        seed: int, device: str = "cpu") -> Value:
    """Feature likelihood score."""
    out = _fls(train, test, fake, reduced_n, seed, device)
    return Value(out["fls"], details={"rows": out["rows"], "seed": seed})


def fls_overfit(train: np.ndarray, test: np.ndarray, fake: np.ndarray, *, reduced_n: int,
                seed: int, device: str = "cpu") -> Value:
    """FLS overfit: % of generated centres likelier on training than on test rows, minus 50."""
    out = _fls(train, test, fake, reduced_n, seed, device)
    return Value(out["fls_overfit"], details={"rows": out["rows"], "seed": seed})


_TRAIN = Needs(form="rows", train=True)
CT = MetricSpec(
    name="ct", family="distribution",
    summary=f"Data-copying test C_T (Meehan et al. 2020): Z-score of generated vs held-out "
            f"distances to the training set ({_DGM}; below 0: closer than fresh data, copying)",
    outputs=(Output("ct", "C_T", True, 2, {"abs": 1.0}),),
    compute=ct, needs=_TRAIN, shortfalls=_ct_shortfalls,
    args={"seed": _SEED, "closest": _CLOSEST})

CT_TEST = MetricSpec(
    name="ct_test", family="distribution",
    summary=f"C_T with the held-out set split in two, its first half as the training set "
            f"({_DGM}; mode collapse)",
    outputs=(Output("ct_test", "C_T test", True, 2, {"abs": 1.0}),),
    compute=ct_test, needs=_TRAIN, shortfalls=_ct_shortfalls, args={"seed": _SEED})

CT_MODIFIED = MetricSpec(
    name="ct_modified", family="distribution",
    summary=f"C_T with the training and generated sets swapped ({_DGM}; memorization only)",
    outputs=(Output("ct_modified", "C_T mod", True, 2, {"abs": 1.0}),),
    compute=ct_modified, needs=_TRAIN, shortfalls=_ct_shortfalls, args={"seed": _SEED})

FLS = MetricSpec(
    name="fls", family="distribution",
    summary=f"Feature likelihood score (Jiralerspong et al. 2023): held-out likelihood of a "
            f"KDE on the generated images vs on training images ({_DGM}; higher is better)",
    outputs=(Output("fls", "FLS", True, 2, {"rel": 0.05}),),
    compute=fls, needs=_TRAIN, shortfalls=_fls_shortfalls,
    args={"reduced_n": _REDUCED_N, "seed": _SEED})

FLS_OVERFIT = MetricSpec(
    name="fls_overfit", family="distribution",
    summary=f"FLS overfit: % of generated images likelier on training than on held-out images, "
            f"minus 50 ({_DGM}; above 0: overfitting)",
    outputs=(Output("fls_overfit", "FLS overfit", False, 2, {"abs": 2.0}),),
    compute=fls_overfit, needs=_TRAIN, shortfalls=_fls_shortfalls,
    args={"reduced_n": _REDUCED_N, "seed": _SEED})
