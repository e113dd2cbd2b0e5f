"""The distribution metrics as registered names: what each needs and how a protocol computes it.

Each class computes its values from two sides (objects with ``n``, ``gaussians`` — layer →
(mu, sigma) — and ``banks`` — layer → float32 rows) under a protocol's settings, and returns
entries of a results record's ``metrics`` block.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from diffbench.errors import MetricInputError
from diffbench.metrics import functional as F
from diffbench.metrics.args import FROM_PROTOCOL, SCALE, Arg
from diffbench.metrics.bootstrap import bootstrap_ci

BOOTSTRAP_SEED = 0


def _entry(value: float, n: dict[str, int], higher: bool, fingerprint: str, protocol: str,
           std: float | None = None, **details: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"value": float(value), "n": n, "higher_is_better": higher,
                           "protocol": protocol, "extractor": fingerprint}
    if std is not None:
        out["std"] = float(std)
    if details:
        out["details"] = details
    return out


def _ci(fn, rows: np.ndarray, n_boot: int) -> dict[str, Any] | None:
    if not n_boot:
        return None
    low, high, _ = bootstrap_ci(fn, rows, n_boot, BOOTSTRAP_SEED)
    return {"low": low, "high": high, "level": 0.95, "method": "percentile bootstrap over the "
            "generated set", "n": n_boot}


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


class FID:
    """Fréchet distance of feature Gaussians (Inception pool3 under the Inception protocols)."""

    family = "distribution"
    higher_is_better = False
    args_schema = {"scale": SCALE}

    name = "fid"

    def compute(self, real, fake, protocol, fingerprint: str, bootstrap: int = 0) -> dict:
        """The metric's entries in a results record."""
        self.layer = protocol.layers[self.name]
        for side, label in ((real, "reference"), (fake, "generated")):
            if self.layer not in side.gaussians:
                raise MetricInputError(f"{self.name}: the {label} side has no {self.layer} "
                                       "statistics")
            if side.n < 2:
                raise MetricInputError(f"{self.name} needs at least 2 {label} images, got "
                                       f"{side.n}")
        mu1, s1 = real.gaussians[self.layer]
        mu2, s2 = fake.gaussians[self.layer]
        value = F.frechet_distance(mu1, s1, mu2, s2)
        dim = len(mu1)
        details = {}
        if min(real.n, fake.n) <= dim:
            details["warning"] = (f"fewer images ({min(real.n, fake.n)}) than feature dimensions "
                                  f"({dim}): the covariance is rank-deficient and the value is "
                                  "biased; not comparable to full-sample numbers")
        entry = _entry(value, {"real": real.n, "fake": fake.n}, False, fingerprint,
                       protocol.name, **details)
        rows = fake.banks.get(self.layer)
        if bootstrap and rows is not None:
            entry["ci"] = _ci(lambda r: fid_from_rows(mu1, s1, r), rows, bootstrap)
        return {self.name: entry}


class SFID(FID):
    """ADM's spatial FID: Fréchet distance on Mixed_6d.branch1x1[:7] (17×17×7) features."""

    name = "sfid"


class KID:
    """Kernel Inception Distance: unbiased MMD², cubic kernel, on pool3 (lower is better)."""

    family = "distribution"
    higher_is_better = False
    args_schema = {
        "variant": Arg("str", FROM_PROTOCOL, "whose estimator: torch-fidelity (needs subset_size "
                       "images per side) or clean-fid (shrinks the subset to fit)",
                       choices=("torch-fidelity", "clean-fid")),
        "subsets": Arg("int", FROM_PROTOCOL, "number of random subsets", minimum=1),
        "subset_size": Arg("int", FROM_PROTOCOL, "images drawn per subset and side", minimum=2),
        "seed": Arg("int", FROM_PROTOCOL, "seed of the subset draws", minimum=0),
        "scale": SCALE,
    }

    def compute(self, real, fake, protocol, fingerprint: str, bootstrap: int = 0) -> dict:
        """The metric's entries in a results record."""
        settings = protocol.kid
        layer = protocol.layers["kid"]
        r, f = real.banks.get(layer), fake.banks.get(layer)
        if r is None or f is None:
            raise MetricInputError(f"kid needs {layer} features of both sides; a statistics file "
                                   "must be made with --keep-features")
        size = settings["subset_size"]
        if settings["variant"] == "clean-fid":
            # real as feats1, generated as feats2 (drawn first): clean-fid's compute_kid with
            # reference statistics, and compute_kid(real_dir, fake_dir) as the try-on scripts call it
            mean, std = F.kid_cleanfid(r, f, settings["subsets"], size, settings["seed"])
        else:
            if min(len(r), len(f)) < size:
                raise MetricInputError(f"kid: subset size {size} needs at least {size} images per "
                                       f"side, got {len(r)} reference and {len(f)} generated; "
                                       f"lower it with --kid-subset-size")
            mean, std = F.kid(f, r, settings["subsets"], size, settings["seed"])
        return {"kid": _entry(mean, {"real": len(r), "fake": len(f)}, False, fingerprint,
                              protocol.name, std=std, subsets=settings["subsets"],
                              subset_size=min(size, len(r), len(f)))}


class ISC:
    """Inception Score of the generated set from logits_unbiased (higher is better)."""

    family = "distribution"
    higher_is_better = True
    args_schema = {
        "splits": Arg("int", FROM_PROTOCOL, "number of splits (torch-fidelity's definition)",
                      minimum=1),
        "split_size": Arg("int", FROM_PROTOCOL, "images per consecutive split (the ADM "
                          "evaluator's definition; protocols that set it ignore splits)",
                          minimum=1),
        "shuffle_seed": Arg("int", FROM_PROTOCOL, "seed of the shuffle before splitting (null: "
                            "no shuffle)", nullable=True),
        "scale": SCALE,
    }

    def compute(self, real, fake, protocol, fingerprint: str, bootstrap: int = 0) -> dict:
        """The metric's entries in a results record."""
        logits = fake.banks.get(protocol.layers["isc"])
        if logits is None:
            raise MetricInputError("isc needs the generated images (not statistics)")
        s = protocol.isc

        def fn(x: np.ndarray) -> float:
            if "split_size" in s:
                return F.inception_score_adm(x, s["split_size"])
            return F.inception_score(x, s["splits"], s["shuffle_seed"])[0]

        if "split_size" in s:
            mean, std = F.inception_score_adm(logits, s["split_size"]), None
        else:
            if len(logits) < s["splits"]:
                raise MetricInputError(f"isc: {s['splits']} splits need at least {s['splits']} "
                                       f"generated images, got {len(logits)}")
            mean, std = F.inception_score(logits, s["splits"], s["shuffle_seed"])
        if not np.isfinite(mean):
            raise MetricInputError("isc is not finite: some class has probability 0 in every "
                                   "generated image (saturated logits); check the weights file")
        entry = _entry(mean, {"fake": len(logits)}, True, fingerprint, protocol.name, std=std)
        if bootstrap:
            entry["ci"] = _ci(fn, logits, bootstrap)
        return {"isc": entry}


class PRC:
    """Improved precision and recall (k-NN manifolds, k=3) on pool3 features (higher is better)."""

    family = "distribution"
    higher_is_better = True
    args_schema = {
        "k": Arg("int", FROM_PROTOCOL, "neighbours that set each manifold radius", minimum=1),
        "mode": Arg("str", FROM_PROTOCOL, "distance arithmetic: adm (float16 blocks) or "
                    "torch-fidelity (float32 cdist)", choices=("adm", "torch-fidelity")),
        "features": Arg("str", FROM_PROTOCOL, "vgg16: a VGG16 fc2_relu pass (torch-fidelity); "
                        "pool3/features: the protocol's extractor", choices=("pool3", "vgg16",
                                                                              "features")),
    }

    def compute(self, real, fake, protocol, fingerprint: str, bootstrap: int = 0) -> dict:
        """The metric's entries in a results record."""
        layer = protocol.layers["prc"]
        r, f = real.banks.get(layer), fake.banks.get(layer)
        if r is None or f is None:
            raise MetricInputError(f"prc needs {layer} features of both sides (images, or "
                                   "statistics made with --keep-features)")
        k = protocol.prc["k"]
        if min(len(r), len(f)) <= k:
            raise MetricInputError(f"prc with k={k} needs more than {k} images per side, got "
                                   f"{len(r)} reference and {len(f)} generated")
        p, rec = F.precision_recall(r, f, k=k, mode=protocol.prc["mode"])
        n = {"real": len(r), "fake": len(f)}
        return {"precision": _entry(p, n, True, fingerprint, protocol.name, k=k),
                "recall": _entry(rec, n, True, fingerprint, protocol.name, k=k)}


class Accuracy:
    """Class accuracy: share of generated images the protocol's classifier puts in the asked class."""

    family = "distribution"
    higher_is_better = True
    args_schema = {"scale": SCALE}

    def compute(self, real, fake, protocol, fingerprint: str, bootstrap: int = 0) -> dict:
        """The metric's entries in a results record."""
        logits = fake.banks.get(protocol.layers.get("accuracy", ""))
        if logits is None or fake.labels is None:
            raise MetricInputError("accuracy needs classifier logits of generated images with "
                                   "their requested class labels (a class-conditional run)")
        hits = (np.asarray(logits).argmax(1) == fake.labels).astype(np.float64)
        entry = _entry(hits.mean(), {"fake": len(hits)}, True, fingerprint, protocol.name,
                       classes=int(np.asarray(logits).shape[1]))
        if bootstrap:
            entry["ci"] = _ci(lambda h: float(h.mean()), hits[:, None], bootstrap)
        return {"accuracy": entry}


METRICS = {"fid": FID, "sfid": SFID, "kid": KID, "isc": ISC, "prc": PRC, "accuracy": Accuracy}


def compute_all(real, fake, protocol, metrics: list[str], fingerprint: str,
                bootstrap: int = 0) -> dict[str, dict[str, Any]]:
    """Every requested metric's entries, in the order asked."""
    out: dict[str, dict[str, Any]] = {}
    for name in metrics:
        out.update(METRICS[name]().compute(real, fake, protocol, fingerprint, bootstrap))
    return out
