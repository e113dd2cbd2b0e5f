"""Distribution metrics on other networks' features: FD_DINOv2, PRDC and CMMD.

One spec and one function each (`diffbench.metrics.spec`), scored by the ``distribution`` family:

- ``fd_dinov2``: the Fréchet distance of DINOv2 ViT-L/14 class tokens (NVlabs/edm2
  ``calculate_metrics.py``, Stein et al.'s dgm-eval); its settings pick EDM2's resize
  (``resize_mode``: ``torch`` or ``pil``), its spec names the network, so any protocol that
  defines it reads the same features;
- ``prdc``: precision, recall, density and coverage (Naeem et al. 2020) as
  ``prdc.compute_prdc`` (`diffbench.metrics.knn`), on the protocol's features or, with the
  ``features`` argument, on VGG16 fc2_relu, Inception pool3 or DINOv2;
- ``cmmd``: MMD with a Gaussian RBF kernel on L2-normalised CLIP ViT-L/14@336px embeddings
  (google-research/cmmd, `diffbench.metrics.mmd`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from diffbench.errors import MetricInputError
from diffbench.features.weights_names import DINOV2_SIZES
from diffbench.metrics import functional as F
from diffbench.metrics.args import FROM_PROTOCOL, SCALE, Arg
from diffbench.metrics.distribution import fid_from_rows, frechet_metric
from diffbench.metrics.spec import Gaussian, MetricSpec, Needs, Output, Shortfall, Value

DINOV2 = ("dinov2-vitl14", "dinov2_cls")  # extractor and layer (diffbench.features.dinov2)
CLIP_L336 = ("clip-vit-l-14-336", "embed")  # diffbench.features.cmmd_clip

# prdc's `features` argument: which extractor, resize and layer feed it ("protocol": its own)
_PRDC_FEATURES = {"vgg16": ("vgg16", "tf-bilinear", "fc2_relu"),
                  "pool3": ("inception", "tf-bilinear", "pool3"),
                  "dinov2": (DINOV2[0], "pil", DINOV2[1])}


def _dinov2_features(s: Mapping[str, Any]) -> tuple[str, str, str]:
    return f"dinov2-{s['arch']}", s["resize_mode"], DINOV2[1]


def _fd_resample(real: Gaussian, rows: np.ndarray) -> float:
    return fid_from_rows(real.mu, real.sigma, rows)


def _subsample(rows: np.ndarray, n: int | None, rng: np.random.RandomState) -> np.ndarray:
    if n is None or len(rows) <= n:
        return rows
    return rows[np.sort(rng.choice(len(rows), n, replace=False))]


def prdc(real: np.ndarray, fake: np.ndarray, *, nearest_k: int, subsample: int | None = None,
         seed: int = 0) -> dict[str, Value]:
    """Precision, recall, density and coverage (``prdc.compute_prdc``), optionally on subsets.

    ``subsample`` draws at most that many rows of each side without replacement (dgm-eval's
    ``reduced_n``: reference first, then generated) from ``RandomState(seed)``.
    """
    if min(len(real), len(fake)) <= nearest_k:
        raise MetricInputError(f"prdc with nearest_k={nearest_k} needs more than {nearest_k} "
                               f"images per side, got {len(real)} reference and {len(fake)} "
                               "generated")
    rng = np.random.RandomState(seed)
    real = _subsample(real, subsample, rng)
    fake = _subsample(fake, subsample, rng)
    values = F.prdc(real, fake, nearest_k=nearest_k)
    details = {"k": nearest_k, "rows": [len(real), len(fake)]}
    return {key: Value(v, details=details) for key, v in values.items()}


def _prdc_features(s: Mapping[str, Any]) -> tuple[str, str, str] | None:
    return _PRDC_FEATURES.get(s.get("features", "protocol"))


def _prdc_shortfalls(n_real: int, n_fake: int, s: Mapping[str, Any]) -> list[Shortfall]:
    k = s["nearest_k"]
    if min(n_real, n_fake) <= k:
        return [Shortfall(f" with nearest_k={k} needs more than {k} images per side",
                          "nearest_k", max(min(n_real, n_fake) - 1, 1), "use more images")]
    return []


def cmmd(real: np.ndarray, fake: np.ndarray, *, sigma: float) -> Value:
    """CMMD: RBF-kernel MMD (biased estimator, ×1000) of L2-normalised CLIP embeddings."""
    from diffbench.metrics.mmd import l2_normalise

    value = F.cmmd(l2_normalise(real), l2_normalise(fake), sigma=sigma, scale=1000.0)
    return Value(value, details={"sigma": sigma})


def _cmmd_shortfalls(n_real: int, n_fake: int, s: Mapping[str, Any]) -> list[Shortfall]:
    return [Shortfall(" needs at least 1 image per side")] if min(n_real, n_fake) < 1 else []


FD_DINOV2 = MetricSpec(
    name="fd_dinov2", family="distribution",
    summary="Fréchet distance of DINOv2 ViT-L/14 features at 224 px (EDM2, dgm-eval; lower is "
            "better)",
    outputs=(Output("fd_dinov2", "FD_DINOv2", False, 2, {"rel": 0.05}, pareto=("fid",)),),
    compute=frechet_metric("fd_dinov2"),
    needs=Needs(form="moments", extractor=DINOV2[0], layer=DINOV2[1]),
    features=_dinov2_features, resample=_fd_resample,
    args={
        "resize_mode": Arg("str", FROM_PROTOCOL, "EDM2's resize to 224: torch (F.interpolate "
                           "bicubic antialias, EDM2's default), pil (PIL bicubic on uint8, "
                           "dgm-eval's) or clean (per-channel float PIL bicubic, dgm-eval's "
                           "--clean_resize)", choices=("torch", "pil", "clean")),
        "arch": Arg("str", "vitl14", "the DINOv2 backbone (dgm-eval's --arch)",
                    choices=DINOV2_SIZES),
        "scale": SCALE,
    })

PRDC = MetricSpec(
    name="prdc", family="distribution",
    summary="Precision, recall, density and coverage (Naeem et al. 2020) as prdc.compute_prdc "
            "(higher is better)",
    outputs=(Output("precision", "Precision", True, 3, {"abs": 0.02}),
             Output("recall", "Recall", True, 3, {"abs": 0.02}),
             Output("density", "Density", True, 3, {"abs": 0.02}),
             Output("coverage", "Coverage", True, 3, {"abs": 0.02})),
    compute=prdc, needs=Needs(form="rows"), features=_prdc_features,
    shortfalls=_prdc_shortfalls,
    args={
        "nearest_k": Arg("int", 5, "neighbours that set each ball radius", minimum=1),
        "subsample": Arg("int", None, "at most this many rows per side, drawn without "
                         "replacement (dgm-eval: 10000); null: all rows", minimum=2,
                         nullable=True),
        "seed": Arg("int", 0, "seed of the subsample draw", minimum=0),
        "features": Arg("str", "protocol", "whose features: the protocol's extractor, vgg16 "
                        "(fc2_relu), pool3 (2015 Inception) or dinov2 (ViT-L/14, PIL resize)",
                        choices=("protocol", *_PRDC_FEATURES)),
    })

CMMD = MetricSpec(
    name="cmmd", family="distribution",
    summary="CMMD: RBF-kernel MMD (sigma 10, x1000) of CLIP ViT-L/14@336px embeddings "
            "(lower is better)",
    outputs=(Output("cmmd", "CMMD", False, 3, {"rel": 0.05}),),
    compute=cmmd, needs=Needs(form="rows", extractor=CLIP_L336[0], resize="cmmd",
                              layer=CLIP_L336[1]),
    shortfalls=_cmmd_shortfalls,
    args={"sigma": Arg("float", 10.0, "bandwidth of the Gaussian RBF kernel", minimum=1e-6),
          "scale": SCALE})
