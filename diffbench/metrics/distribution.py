"""The distribution metrics: a generated set against a reference set through one extractor.

Each metric is a compute function (arrays in, numbers out, on `diffbench.metrics.functional`)
and its `MetricSpec`, declared once below. The ``distribution`` family
(`diffbench.scoring.distribution`) reads each image set once per extractor and hands every
metric what its spec says it needs: the Gaussians of both sides (FID, sFID), the feature rows of
both sides (KID, precision/recall) or the rows of the generated side (IS; class accuracy with the
requested labels).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from diffbench.errors import MetricInputError
from diffbench.metrics import functional as F
from diffbench.metrics.args import FROM_PROTOCOL, SCALE, Arg
from diffbench.metrics.spec import Gaussian, MetricSpec, Needs, Output, Shortfall, Value


def rank_warning(n: int, dim: int) -> str | None:
    """The warning of a Fréchet distance from fewer images than feature dimensions (or None)."""
    if n > dim:
        return None
    return (f"fewer images ({n}) than feature dimensions ({dim}): the covariance is "
            "rank-deficient and the value is biased; not comparable to full-sample numbers")


def fid_from_rows(mu1: np.ndarray, sigma1: np.ndarray, rows: np.ndarray) -> float:
    """FID of reference Gaussian (mu1, sigma1) vs the Gaussian of feature `rows`.

    With fewer rows than dimensions (bootstrap on small sets) the trace term uses the n×n Gram
    form: the non-zero eigenvalues of S1·S2 equal those of X·S1·Xᵀ/(n-1), X the centred rows.
    """
    rows = np.asarray(rows, dtype=np.float64)
    n, dim = rows.shape
    mu2 = rows.mean(0)
    if n > dim:
        return F.frechet_distance(mu1, sigma1, mu2, np.cov(rows, rowvar=False))
    x = rows - mu2
    gram = (x @ sigma1 @ x.T) / (n - 1)
    eig = np.linalg.eigvalsh((gram + gram.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + (x * x).sum() / (n - 1) - 2 * tr_sqrt)


def frechet_metric(name: str):
    """The compute function of a Fréchet distance named `name` (FID, sFID, FD_DINOv2)."""

    def frechet(real: Gaussian, fake: Gaussian) -> Value:
        """Fréchet distance of two feature Gaussians; flagged when a covariance is rank-deficient."""
        for side, label in ((real, "reference"), (fake, "generated")):
            if side.n < 2:
                raise MetricInputError(f"{name} needs at least 2 {label} images, got {side.n}")
        value = F.frechet_distance(real.mu, real.sigma, fake.mu, fake.sigma)
        warning = rank_warning(min(real.n, fake.n), len(real.mu))
        return Value(value, details={"warning": warning} if warning else {})

    return frechet


def _fid_resample(real: Gaussian, rows: np.ndarray) -> float:
    return fid_from_rows(real.mu, real.sigma, rows)


def kid(real: np.ndarray, fake: np.ndarray, *, variant: str, subsets: int, subset_size: int,
        seed: int | None) -> Value:
    """KID (mean and std over subsets) by torch-fidelity's or clean-fid's estimator."""
    if variant == "clean-fid":
        # real as feats1, generated as feats2 (drawn first): clean-fid's compute_kid with
        # reference statistics, and compute_kid(real_dir, fake_dir) as the try-on scripts call it
        mean, std = F.kid_cleanfid(real, fake, subsets, subset_size, seed)
    else:
        if min(len(real), len(fake)) < subset_size:
            raise MetricInputError(f"kid: subset size {subset_size} needs at least {subset_size} "
                                   f"images per side, got {len(real)} reference and {len(fake)} "
                                   "generated; lower subset_size (--kid-subset-size)")
        mean, std = F.kid(fake, real, subsets, subset_size, seed)
    size = min(subset_size, len(real), len(fake))
    details: dict[str, Any] = {"subsets": subsets, "subset_size": size}
    if size >= max(len(real), len(fake)):  # every subset is both whole sets: no spread to show
        details["no_spread"] = (f"subset size {size} ≥ the {size} images per side, so every "
                                "subset is the whole set and subsets cannot vary")
        return Value(mean, None, details)
    return Value(mean, std, details)


def _kid_shortfalls(n_real: int, n_fake: int, s: Mapping[str, Any]) -> list[Shortfall]:
    low, size = min(n_real, n_fake), s["subset_size"]
    if s["variant"] != "clean-fid" and low < size:
        return [Shortfall(f": subset size {size} needs at least {size} images per side",
                          "subset_size", max(low, 2), "use more images")]
    if low < 2:
        return [Shortfall(" needs at least 2 images per side")]
    return []


def _isc_value(fake: np.ndarray, *, splits: int | None = None, split_size: int | None = None,
               shuffle_seed: int | None = None) -> float:
    if split_size is not None:
        return F.inception_score_adm(fake, split_size)
    return F.inception_score(fake, splits, shuffle_seed)[0]


def isc(fake: np.ndarray, *, splits: int | None = None, split_size: int | None = None,
        shuffle_seed: int | None = None) -> Value:
    """Inception Score: ADM's consecutive splits when ``split_size`` is set, else torch-fidelity's."""
    if split_size is not None:
        mean, std = F.inception_score_adm(fake, split_size), None
    else:
        if len(fake) < splits:
            raise MetricInputError(f"isc: {splits} splits need at least {splits} generated "
                                   f"images, got {len(fake)}")
        mean, std = F.inception_score(fake, splits, shuffle_seed)
    if not np.isfinite(mean):
        raise MetricInputError("isc is not finite: some class has probability 0 in every "
                               "generated image (saturated logits); check the weights file")
    return Value(mean, std)


def _isc_shortfalls(n_real: int, n_fake: int, s: Mapping[str, Any]) -> list[Shortfall]:
    if s.get("split_size") is not None or n_fake >= s["splits"]:
        return []
    splits = s["splits"]
    return [Shortfall(f": {splits} splits need at least {splits} generated images", "splits",
                      max(n_fake, 1), "generate more images")]


def _isc_conflicts(protocol: Mapping[str, Any], args: Mapping[str, Any]) -> list[str]:
    if "splits" in args and "split_size" in protocol and "split_size" not in args:
        return [f"'splits' does not apply: the protocol computes IS over consecutive splits of "
                f"split_size ({protocol['split_size']}) images, as the ADM evaluator; set "
                "split_size instead"]
    return []


def prc(real: np.ndarray, fake: np.ndarray, *, k: int, mode: str) -> dict[str, Value]:
    """Improved precision and recall (k-NN manifolds) of the generated rows against the real ones."""
    if min(len(real), len(fake)) <= k:
        raise MetricInputError(f"prc with k={k} needs more than {k} images per side, got "
                               f"{len(real)} reference and {len(fake)} generated")
    p, r = F.precision_recall(real, fake, k=k, mode=mode)
    return {"precision": Value(p, details={"k": k}), "recall": Value(r, details={"k": k})}


def _prc_features(s: Mapping[str, Any]) -> tuple[str, str, str] | None:
    # torch-fidelity computes precision/recall on VGG16 fc2_relu features at 224 px (a second
    # pass); `pool3`/`features` keep them on the protocol's extractor (ADM's choice).
    return ("vgg16", "tf-bilinear", "fc2_relu") if s.get("features") == "vgg16" else None


def _prc_shortfalls(n_real: int, n_fake: int, s: Mapping[str, Any]) -> list[Shortfall]:
    k = s["k"]
    if min(n_real, n_fake) <= k:
        return [Shortfall(f" with k={k} needs more than {k} images per side")]
    return []


def accuracy(fake: np.ndarray, labels: np.ndarray) -> Value:
    """Share of generated images whose classifier logits put them in the requested class."""
    logits = np.asarray(fake)
    hits = (logits.argmax(1) == labels).astype(np.float64)
    return Value(hits.mean(), details={"classes": int(logits.shape[1])})


def _accuracy_resample(rows: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(rows).argmax(1) == labels).astype(np.float64).mean())


_FID_SUMMARY = "Fréchet distance of feature Gaussians (Inception pool3 under the Inception protocols)"
FID = MetricSpec(
    name="fid", family="distribution", summary=_FID_SUMMARY,
    outputs=(Output("fid", "FID", False, 2, {"rel": 0.05}, pareto=("isc",),
                    features="inception", other_features="FD ({extractor})"),),
    compute=frechet_metric("fid"), needs=Needs(form="moments"), args={"scale": SCALE},
    resample=_fid_resample)

SFID = MetricSpec(
    name="sfid", family="distribution",
    summary="ADM's spatial FID: Fréchet distance on Mixed_6d.branch1x1[:7] (17×17×7) features",
    outputs=(Output("sfid", "sFID", False, 2, {"rel": 0.05}),),
    compute=frechet_metric("sfid"), needs=Needs(form="moments"), args={"scale": SCALE},
    resample=_fid_resample)

KID = MetricSpec(
    name="kid", family="distribution",
    summary="Kernel Inception Distance: unbiased MMD², cubic kernel, on pool3 (lower is better)",
    outputs=(Output("kid", "KID", False, 5, {"rel": 0.10}),),
    compute=kid, needs=Needs(form="rows"), shortfalls=_kid_shortfalls,
    args={
        "variant": Arg("str", FROM_PROTOCOL, "whose estimator: torch-fidelity (needs subset_size "
                       "images per side) or clean-fid (shrinks the subset to fit)",
                       choices=("torch-fidelity", "clean-fid")),
        "subsets": Arg("int", FROM_PROTOCOL, "number of random subsets", minimum=1),
        "subset_size": Arg("int", FROM_PROTOCOL, "images drawn per subset and side", minimum=2),
        "seed": Arg("int", FROM_PROTOCOL, "seed of the subset draws", minimum=0),
        "scale": SCALE,
    })

ISC = MetricSpec(
    name="isc", family="distribution",
    summary="Inception Score of the generated set from logits_unbiased (higher is better)",
    outputs=(Output("isc", "IS", True, 1, {"rel": 0.05}),),
    compute=isc, needs=Needs(form="fake_rows"), resample=_isc_value,
    shortfalls=_isc_shortfalls, conflicts=_isc_conflicts,
    args={
        "splits": Arg("int", FROM_PROTOCOL, "number of splits (torch-fidelity's definition)",
                      minimum=1),
        "split_size": Arg("int", FROM_PROTOCOL, "images per consecutive split (the ADM "
                          "evaluator's definition; protocols that set it ignore splits)",
                          minimum=1),
        "shuffle_seed": Arg("int", FROM_PROTOCOL, "seed of the shuffle before splitting (null: "
                            "no shuffle)", nullable=True),
        "scale": SCALE,
    })

PRC = MetricSpec(
    name="prc", family="distribution",
    summary="Improved precision and recall (k-NN manifolds, k=3) on pool3 features (higher is "
            "better)",
    outputs=(Output("precision", "Precision", True, 3, {"abs": 0.02}),
             Output("recall", "Recall", True, 3, {"abs": 0.02})),
    compute=prc, needs=Needs(form="rows"), features=_prc_features, shortfalls=_prc_shortfalls,
    args={
        "k": Arg("int", FROM_PROTOCOL, "neighbours that set each manifold radius", minimum=1),
        "mode": Arg("str", FROM_PROTOCOL, "distance arithmetic: adm (float16 blocks) or "
                    "torch-fidelity (float32 cdist)", choices=("adm", "torch-fidelity")),
        "features": Arg("str", FROM_PROTOCOL, "vgg16: a VGG16 fc2_relu pass (torch-fidelity); "
                        "pool3/features: the protocol's extractor", choices=("pool3", "vgg16",
                                                                              "features")),
    })

ACCURACY = MetricSpec(
    name="accuracy", family="distribution",
    summary="Class accuracy: share of generated images the protocol's classifier puts in the "
            "asked class",
    outputs=(Output("accuracy", "Accuracy", True, 3, {"abs": 0.02}),),
    compute=accuracy, needs=Needs(form="fake_rows", labels=True), args={"scale": SCALE},
    resample=_accuracy_resample)
