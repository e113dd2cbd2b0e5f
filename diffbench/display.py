"""Display names, directions and display scales of metrics: data, not logic.

Reports, the gate, Pareto plots and the CLI tables read these. A results record may override the
direction per metric (``higher_is_better``), which plugins use for metrics not listed here.

``decimals`` counts the digits shown for a value at the entry's own ``scale``. A report column
may use another scale (the results' metric ``scale``, or a published file's ``scales``: KID×1000
in try-on tables, DINO×100 in some personalisation papers); `decimals_at` then shifts the digits
so the same precision shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class MetricDisplay:
    """How a metric is shown."""

    label: str
    higher_is_better: bool
    decimals: int = 3
    scale: float = 1.0


METRICS: dict[str, MetricDisplay] = {
    "fid": MetricDisplay("FID", False, 2),
    "sfid": MetricDisplay("sFID", False, 2),
    "kid": MetricDisplay("KID", False, 5),
    "isc": MetricDisplay("IS", True, 1),
    "precision": MetricDisplay("Precision", True, 3),
    "recall": MetricDisplay("Recall", True, 3),
    "ssim": MetricDisplay("SSIM", True, 4),
    "lpips": MetricDisplay("LPIPS", False, 4),
    "dino": MetricDisplay("DINO", True, 3),
    "clip_i": MetricDisplay("CLIP-I", True, 3),
    "clip_t": MetricDisplay("CLIP-T", True, 3),
    "dinov2": MetricDisplay("DINOv2", True, 3),
    "siglip_i": MetricDisplay("SigLIP-I", True, 3),
    "siglip_t": MetricDisplay("SigLIP-T", True, 3),
    "accuracy": MetricDisplay("Accuracy", True, 3),
}


def display(name: str, record_metric: dict | None = None) -> MetricDisplay | None:
    """The display info of a metric; the record's own direction wins when it has one."""
    base = METRICS.get(name)
    if record_metric and "higher_is_better" in record_metric:
        base = base or MetricDisplay(name, True, 4)
        return replace(base, higher_is_better=bool(record_metric["higher_is_better"]))
    return base


def label(name: str) -> str:
    """The display label of a metric (its name when unknown)."""
    info = METRICS.get(name)
    return info.label if info else name


def arrow(higher_is_better: bool) -> str:
    """↑ when higher is better, ↓ otherwise."""
    return "↑" if higher_is_better else "↓"


def decimals_at(name: str, scale: float) -> int:
    """Digits to show for `name` multiplied by `scale` (its entry's precision, shifted)."""
    info = METRICS.get(name)
    decimals, own = (info.decimals, info.scale) if info else (4, 1.0)
    if scale <= 0 or own <= 0:
        return decimals
    return max(0, decimals - round(math.log10(scale / own)))


def scale_suffix(scale: float) -> str:
    """`×1000` for a scaled column, empty for scale 1."""
    return "" if scale == 1 else f"×{scale:g}"
