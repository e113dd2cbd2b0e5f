"""Protocols: named, recorded bundles of choices that make a number comparable to a paper.

A protocol fixes the resize before Inception and how each metric is computed from the features.
Every results record names its protocol and carries these settings; numbers of different
protocols are never put in one table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from diffbench.errors import ConfigError, shown

# The layer each metric reads under the 2015 TF Inception (the Inception protocols' `layers`): the
# one table of it (the specs leave the layer to the protocol; `diffbench.features.inception`
# lists the layers the network gives, and a test checks these are among them).
INCEPTION_LAYERS = {"fid": "pool3", "sfid": "sfid", "kid": "pool3", "prc": "pool3",
                    "isc": "logits_unbiased"}


@dataclass(frozen=True)
class Protocol:
    """A protocol: what is protocol-wide, and each metric's settings under ``params``.

    ``resize`` and ``extractor`` are the resize and feature extractor of the distribution
    metrics (``inception``: the 2015 TF Inception; ``digits``: the offline demo's classifier),
    ``layers`` which of its layers each metric reads. ``params`` holds each metric's settings,
    keyed by metric name (``{"kid": {"subsets": 100, ...}, "ssim": {...}}``), with display
    settings (``scale``) among them, and the reference side's preparation (``reals``). The
    results record carries `settings`.

    ``inputs`` holds protocol-wide input settings a user may change (``--protocol-arg``, a
    task's ``protocol_args``; `with_inputs`), dgm-eval's: ``clean_resize``, ``max_images``,
    ``subsample_seed``, ``arch``. A changed one is recorded, so the record is judged as
    another protocol.
    """

    name: str
    summary: str
    resize: str
    metrics: tuple[str, ...]
    notes: str = ""
    extractor: str = "inception"
    layers: dict[str, str] = field(default_factory=lambda: dict(INCEPTION_LAYERS))
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "__doc__", self.summary)

    def settings(self) -> dict[str, Any]:
        """The choices recorded in results (``inputs`` only where the protocol has some)."""
        out = asdict(self)
        out.pop("summary")
        if not out["inputs"]:
            out.pop("inputs")
        return out

    def arguments(self) -> list[str]:
        """Its input settings as ``name=default`` (what ``diffbench protocols`` lists)."""
        return [f"{k}={v!r}" for k, v in self.inputs.items()]

    def with_inputs(self, given: Mapping[str, Any] | None) -> Protocol:
        """This protocol with some of its ``inputs`` changed, and what they decide: checked
        against those it declares (names and types)."""
        if not given:
            return self
        problems = [f"protocol '{self.name}' has no setting {shown(k)} (it has: "
                    f"{', '.join(self.inputs) or 'none'})" for k in given if k not in self.inputs]
        problems += [f"protocol setting {k}={shown(v)}: expected {type(self.inputs[k]).__name__}"
                     for k, v in given.items() if k in self.inputs
                     and type(v) is not type(self.inputs[k])]  # noqa: E721 (bool is not int)
        problems += [f"protocol setting {k}={v}: expected at least 1" for k, v in given.items()
                     if k == "max_images" and type(v) is int and v < 1]
        if problems:
            raise ConfigError("; ".join(problems))
        changed = {k: v for k, v in given.items() if v != self.inputs[k]}
        return dataclasses.replace(self, inputs={**self.inputs, **given}, **_decided(self, changed))

    def param(self, metric: str) -> dict[str, Any]:
        """Every setting this protocol gives `metric` (its ``params`` entry; empty: none)."""
        return dict(self.params.get(metric, {}))

    def check_metrics(self, names: list[str]) -> None:
        """Refuse metrics this protocol does not define."""
        unknown = [m for m in names if m not in self.metrics]
        if unknown:
            raise ConfigError(f"protocol '{self.name}' does not define {', '.join(unknown)}; "
                              f"it defines {', '.join(self.metrics)}")


def _decided(protocol: Protocol, changed: Mapping[str, Any]) -> dict[str, Any]:
    """The fields input settings decide: ``clean_resize`` the resize (``clean``), ``arch`` the
    DINOv2 extractor (``dinov2-<arch>``), for the protocol and for the metrics that name their
    own DINOv2 features (those with a ``resize_mode`` in ``params``: fd_dinov2). ``max_images``
    and ``subsample_seed`` are read where a set is opened (`diffbench.data.subset`)."""
    from diffbench.features.weights_names import DINOV2_SIZES

    arch = changed.get("arch")
    if arch is not None and arch not in DINOV2_SIZES:
        raise ConfigError(f"protocol setting arch={shown(arch)}: expected one of "
                          f"{', '.join(DINOV2_SIZES)}")
    clean = {"resize_mode": "clean"} if changed.get("clean_resize") else {}
    named = {"arch": arch} if arch else {}
    out: dict[str, Any] = {"params": {k: {**v, **clean, **named} if "resize_mode" in v else v
                                      for k, v in protocol.params.items()}}
    if clean:
        out["resize"] = "clean"
    if arch:
        out["extractor"] = f"dinov2-{arch}"
    return out


ADM = Protocol(
    name="adm",
    summary="ADM evaluator (guided-diffusion): TF1 bilinear resize; FID/sFID from statistics, "
            "IS over splits of 5000 (mean), precision/recall k=3 on pool3 (float16 distances)",
    resize="tf-bilinear",
    metrics=("fid", "sfid", "isc", "prc", "kid"),
    params={"isc": {"split_size": 5000, "shuffle_seed": None, "std": False},
            "kid": {"variant": "torch-fidelity", "subsets": 100, "subset_size": 1000, "seed": 2020},
            "prc": {"k": 3, "mode": "adm", "features": "pool3"}},
    notes="A reference batch's stored mu/sigma (mu_s/sigma_s) are used for FID (sFID); its "
          "images for precision/recall. KID is not part of the ADM evaluator; it is computed "
          "as torch-fidelity computes it when asked.",
)

TORCH_FIDELITY = Protocol(
    name="torch-fidelity",
    summary="torch-fidelity 0.4 defaults: TF1 bilinear resize; IS 10 splits (shuffle seed 2020) "
            "mean ± std; KID 100×1000 cubic kernel seed 2020; precision/recall k=3 on VGG16",
    resize="tf-bilinear",
    metrics=("fid", "isc", "kid", "prc", "sfid"),
    params={"isc": {"splits": 10, "shuffle_seed": 2020, "std": True},
            "kid": {"variant": "torch-fidelity", "subsets": 100, "subset_size": 1000, "seed": 2020},
            "prc": {"k": 3, "mode": "torch-fidelity", "features": "vgg16"}},
    notes="Precision/recall use VGG16 fc2_relu features at 224 px, as torch-fidelity does (a "
          "second pass, weights vgg16-imagenet); set prc features to pool3 to compute them on "
          "Inception instead (ADM's choice).",
)

CLEAN_FID = Protocol(
    name="clean-fid",
    summary="clean-fid 'clean' mode: PIL bicubic resize on float without re-quantisation; "
            "FID and its KID definition (subset size min(n1, n2, 1000), seeded)",
    resize="clean",
    metrics=("fid", "kid"),
    params={"kid": {"variant": "clean-fid", "subsets": 100, "subset_size": 1000, "seed": 2020}},
    notes="clean-fid draws KID subsets from the unseeded global RNG; diffbench seeds them "
          "(seed 2020) so the number is reproducible.",
)

DEMO_DIGITS = Protocol(
    name="demo-digits",
    summary="Offline smoke protocol: the demo digits classifier's 64-d features (Fréchet distance, "
            "precision/recall k=3) and its 10-way logits (IS over 10 splits, class accuracy)",
    resize="bilinear",
    metrics=("fid", "kid", "isc", "prc", "accuracy"),
    extractor="digits",
    layers={"fid": "features", "kid": "features", "prc": "features", "isc": "logits",
            "accuracy": "logits"},
    params={"isc": {"splits": 10, "shuffle_seed": 2020, "std": True},
            "kid": {"variant": "torch-fidelity", "subsets": 100, "subset_size": 100, "seed": 2020},
            "prc": {"k": 3, "mode": "torch-fidelity", "features": "features"}},
    notes="A smoke protocol for the offline demo suite: it exercises every scoring stage on a "
          "tiny classifier; its numbers say nothing about image quality on real benchmarks.",
)

PROTOCOLS = {p.name: p for p in (ADM, TORCH_FIDELITY, CLEAN_FID, DEMO_DIGITS)}

def get_protocol(name: str) -> Protocol:
    """A protocol by name, through the registry (so plugins can add their own)."""
    from diffbench.registry import PROTOCOLS as REGISTRY

    proto = REGISTRY.get(name)
    if not isinstance(proto, Protocol):
        raise ConfigError(f"protocol '{name}' is registered but is not a diffbench Protocol")
    return proto
