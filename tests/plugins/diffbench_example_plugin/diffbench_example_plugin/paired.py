"""A paired metric with two outputs, and the try-on protocol that defines it.

``pixel_diff`` compares each generated image with its ground truth pixel by pixel and writes two
outputs: ``pixel_mae`` (mean absolute difference in [0, 1], lower is better) and ``pixel_equal``
(the share of identical pixel values, higher is better). The paired family reads each pair
once for it and for SSIM/LPIPS; the report and the gate read each output's facts from the spec.
"""

from __future__ import annotations

import dataclasses

import torch

from diffbench.metrics.args import PAIRED_PREP_ARGS
from diffbench.metrics.spec import MetricSpec, Needs, Output
from diffbench.protocols.vton import CATVTON


def pixel_diff(gt: torch.Tensor, pred: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per pair of uint8 N×3×H×W images: mean |gt − pred| / 255 and the share of equal values."""
    diff = (gt.double() - pred.double()).abs()
    return {"pixel_mae": diff.mean(dim=(1, 2, 3)) / 255.0,
            "pixel_equal": (diff == 0).double().mean(dim=(1, 2, 3))}


PIXEL_DIFF = MetricSpec(
    name="pixel_diff",
    family="paired",
    summary="Per-pixel difference of each generated image with its ground truth (two outputs)",
    outputs=(Output("pixel_mae", "Pixel MAE", higher_is_better=False, decimals=4,
                    tolerance={"abs": 0.01}),
             Output("pixel_equal", "Equal pixels", higher_is_better=True, decimals=4,
                    tolerance={"abs": 0.01})),
    compute=pixel_diff,
    needs=Needs(against="ground_truth"),
    args=dict(PAIRED_PREP_ARGS),
)

# CatVTON's try-on protocol plus pixel_diff, its pairs prepared as SSIM's are.
EXAMPLE_TRYON = dataclasses.replace(
    CATVTON, name="example-tryon",
    summary="catvton plus the example plugin's pixel_diff (two outputs)",
    metrics=(*CATVTON.metrics, "pixel_diff"),
    params={**CATVTON.params, "pixel_diff": {k: v for k, v in CATVTON.params["ssim"].items()
                                             if k in PAIRED_PREP_ARGS}})
