"""A distribution metric in one spec and one function, and the protocol that defines it.

``mean_gap`` is the squared distance between the mean feature vectors of the reference and the
generated set (the first term of a Fréchet distance). It reads each side's Gaussian moments, so
diffbench extracts the features once and shares them with FID.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from diffbench.metrics.args import SCALE, Arg
from diffbench.metrics.spec import Gaussian, MetricSpec, Needs, Output
from diffbench.protocols import DEMO_DIGITS


def mean_gap(real: Gaussian, fake: Gaussian, *, root: bool = False) -> float:
    """||mu_real - mu_fake||², or the distance itself with `root` (float64)."""
    diff = np.asarray(real.mu, dtype=np.float64) - np.asarray(fake.mu, dtype=np.float64)
    value = float(diff @ diff)
    return float(np.sqrt(value)) if root else value


MEAN_GAP = MetricSpec(
    name="mean_gap",
    family="distribution",
    summary="Squared distance between the mean features of the two sets (lower is better)",
    outputs=(Output("mean_gap", "Mean gap", higher_is_better=False, decimals=3,
                    tolerance={"rel": 0.10}),),
    compute=mean_gap,
    needs=Needs(form="moments", covariance=False),  # means only: no few-images warning
    args={"root": Arg("bool", False, "report the distance instead of its square"),
          "scale": SCALE},
)

# The protocol that defines mean_gap: demo-digits (the offline demo's classifier features) plus
# mean_gap on the same 64-d layer as its Fréchet distance.
EXAMPLE_DIGITS = dataclasses.replace(
    DEMO_DIGITS, name="example-digits",
    summary="demo-digits plus the example plugin's mean_gap on the digits classifier features",
    metrics=(*DEMO_DIGITS.metrics, "mean_gap"),
    layers={**DEMO_DIGITS.layers, "mean_gap": "features"})
