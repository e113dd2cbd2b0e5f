"""The specs of dgm-eval's two-set metrics (`diffbench.metrics.dgm`, realism in
`diffbench.metrics.knn`): one `MetricSpec` each, scored by the ``distribution`` family on the
protocol's features (DINOv2 ViT-L/14 under ``dgm-eval``).

The draws dgm-eval leaves unseeded (FD∞'s subsets, KD's subsets, the reference subset of the
realism score) take a ``seed`` argument, dgm-eval's ``--seed`` 13579 by default, recorded with
each value. The memorization metrics (ct, fls) need a training set and are not registered yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from diffbench.errors import MetricInputError
from diffbench.metrics import dgm
from diffbench.metrics.args import SCALE, Arg
from diffbench.metrics.spec import Gaussian, MetricSpec, Needs, Output, Shortfall, Value

_SEED = Arg("int", dgm.DGM_SEED, "seed of the random draws dgm-eval leaves unseeded "
            "(dgm-eval's --seed)", minimum=0)


def _at_least(real: int, fake: int) -> Callable[[int, int, Mapping[str, Any]], list[Shortfall]]:
    def shortfalls(n_real: int, n_fake: int, s: Mapping[str, Any]) -> list[Shortfall]:
        if n_real < real or n_fake < fake:
            return [Shortfall(f" needs at least {real} reference and {fake} generated images")]
        return []

    return shortfalls


def fd_eff(real: Gaussian, fake: Gaussian) -> float:
    """dgm-eval's efficient FD of two feature Gaussians."""
    return dgm.fd_eff(real.mu, real.sigma, fake.mu, fake.sigma)


def fd_infinity(real: np.ndarray, fake: np.ndarray, *, num_points: int, seed: int) -> Value:
    """FD∞ with the sizes and FD_N of its fit in the details."""
    value, details = dgm.fd_infinity(real, fake, num_points=num_points, seed=seed)
    return Value(value, details=details)


def kd(real: np.ndarray, fake: np.ndarray, *, subsets: int, subset_size: int,
       seed: int) -> Value:
    """dgm-eval's KD: mean ± population std of the subsets' MMD²."""
    mean, std = dgm.kd(real, fake, subsets=subsets, subset_size=subset_size, seed=seed)
    return Value(mean, std, {"subsets": subsets, "seed": seed,
                             "subset_size": min(subset_size, len(real), len(fake))})


def vendi(fake: np.ndarray) -> float:
    """Vendi score of the whole generated set."""
    return dgm.vendi(fake)


def vendi_per_class(fake: np.ndarray, labels: np.ndarray) -> Value:
    """Mean over classes of the per-class Vendi score (each class's score in the details)."""
    scores = dgm.vendi_per_class(fake, labels)
    return Value(float(scores.mean()), details={"per_class": scores.tolist()})


def authpct(real: np.ndarray, fake: np.ndarray) -> float:
    """dgm-eval's authenticity percentage."""
    return dgm.authpct(real, fake)


def sw_approx(real: Gaussian, fake: Gaussian) -> float:
    """Approximate sliced W2 from the two Gaussians."""
    return dgm.sw_approx(real.mu, real.sigma, real.n, fake.mu, fake.sigma, fake.n)


def realism(real: np.ndarray, fake: np.ndarray, *, nearest_k: int, subsample: int | None,
            seed: int) -> Value:
    """Median realism score of the generated rows; each row's score (in order) in the details.

    The reference rows are drawn as dgm-eval draws them for PRDC with ``realism``: at most
    ``min(subsample, n_real, n_fake)`` without replacement (unsorted), all generated rows kept.
    A generated row equal to a kept reference row scores infinity: ``null`` in the details.
    """
    from diffbench.metrics.knn import realism as per_fake

    n = len(real) if subsample is None else min(subsample, len(real), len(fake))
    rows = real[np.random.RandomState(seed).choice(len(real), n, replace=False)]
    scores = per_fake(rows, fake, nearest_k=nearest_k).astype(np.float64)
    median = float(np.median(scores))
    if not np.isfinite(median):
        raise MetricInputError("realism: more than half of the generated images equal a "
                               "reference image (infinite scores); check the generated set")
    return Value(median, details={
        "per_sample": [float(v) if np.isfinite(v) else None for v in scores],
        "copies": int((~np.isfinite(scores)).sum()), "k": nearest_k, "rows": [n, len(fake)], "seed": seed})


_DGM = "dgm-eval"
FD_EFF = MetricSpec(
    name="fd_eff", family="distribution",
    summary=f"Fréchet distance with Tr√(Σ1Σ2) from the eigenvalues of Σ1Σ2 ({_DGM}; lower is "
            "better)",
    outputs=(Output("fd_eff", "FD (eig)", False, 2, {"rel": 0.05}),),
    compute=fd_eff, needs=Needs(form="moments"), shortfalls=_at_least(2, 2),
    args={"scale": SCALE})

FD_INFINITY = MetricSpec(
    name="fd_infinity", family="distribution",
    summary=f"FD∞: FD on 15 generated subsets of growing size N, extrapolated to 1/N = 0 ({_DGM};"
            " lower is better)",
    outputs=(Output("fd_infinity", "FD∞", False, 2, {"rel": 0.05}),),
    compute=fd_infinity, needs=Needs(form="rows"), shortfalls=_at_least(2, 3),
    args={"num_points": Arg("int", 15, "subset sizes of the linear fit", minimum=2),
          "seed": _SEED, "scale": SCALE})

KD = MetricSpec(
    name="kd", family="distribution",
    summary=f"Kernel distance: unbiased cubic-kernel MMD² over 100 subsets of min(1000, N) "
            f"({_DGM}; lower is better)",
    outputs=(Output("kd", "KD", False, 5, {"rel": 0.10}),),
    compute=kd, needs=Needs(form="rows"), shortfalls=_at_least(2, 2),
    args={"subsets": Arg("int", 100, "number of random subsets", minimum=1),
          "subset_size": Arg("int", 1000, "rows per subset and side (at most the smaller set)",
                             minimum=2),
          "seed": _SEED, "scale": SCALE})

VENDI = MetricSpec(
    name="vendi", family="distribution",
    summary=f"Vendi score of the generated set: exp entropy of the cosine kernel's eigenvalues "
            f"({_DGM}'s compute_vendi_score; higher is more diverse)",
    outputs=(Output("vendi", "Vendi", True, 2, {"rel": 0.05}),),
    compute=vendi, needs=Needs(form="fake_rows"), shortfalls=_at_least(0, 1))

VENDI_PER_CLASS = MetricSpec(
    name="vendi_per_class", family="distribution",
    summary=f"Mean over the asked classes of each class's Vendi score ({_DGM}'s default vendi; "
            "class-conditional runs; higher is more diverse)",
    outputs=(Output("vendi_per_class", "Vendi/class", True, 2, {"rel": 0.05}),),
    compute=vendi_per_class, needs=Needs(form="fake_rows", labels=True),
    shortfalls=_at_least(0, 1))

AUTHPCT = MetricSpec(
    name="authpct", family="distribution",
    summary=f"AuthPct: % of generated images farther from their nearest reference image than "
            f"that image's nearest neighbour ({_DGM}; higher is more authentic)",
    outputs=(Output("authpct", "AuthPct", True, 2, {"abs": 2.0}),),
    compute=authpct, needs=Needs(form="rows"), shortfalls=_at_least(2, 1))

SW_APPROX = MetricSpec(
    name="sw_approx", family="distribution",
    summary=f"Approximate sliced Wasserstein-2 distance from means and second moments ({_DGM}; "
            "lower is better)",
    outputs=(Output("sw_approx", "SW≈", False, 4, {"rel": 0.05}),),
    compute=sw_approx, needs=Needs(form="moments"), shortfalls=_at_least(1, 1),
    args={"scale": SCALE})

REALISM = MetricSpec(
    name="realism", family="distribution",
    summary=f"Realism score (Kynkäänniemi et al. 2019), median over the generated images; each "
            f"image's score in the record ({_DGM}'s PRDC realism; higher is better)",
    outputs=(Output("realism", "Realism", True, 3, {"rel": 0.05}),),
    compute=realism, needs=Needs(form="rows"),
    shortfalls=lambda n_real, n_fake, s: _at_least(s["nearest_k"] + 1, 1)(n_real, n_fake, s),
    args={"nearest_k": Arg("int", 5, "neighbours that set each ball radius", minimum=1),
          "subsample": Arg("int", 10000, "at most this many reference rows (and no more than "
                           "the generated rows), drawn without replacement; null: all",
                           minimum=2, nullable=True),
          "seed": _SEED})
