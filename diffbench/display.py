"""Display names, directions and display scales of metrics: data, not logic.

Reports, the gate and the CLI tables read these. A results record may override the direction
per metric (``higher_is_better``), which plugins use for metrics not listed here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricDisplay:
    """How a metric is shown."""

    label: str
    higher_is_better: bool
    decimals: int = 3


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
    "accuracy": MetricDisplay("Accuracy", True, 3),
}


def display(name: str, record_metric: dict | None = None) -> MetricDisplay | None:
    """The display info of a metric; the record's own direction wins when it has one."""
    base = METRICS.get(name)
    if record_metric and "higher_is_better" in record_metric:
        label = base.label if base else name
        decimals = base.decimals if base else 4
        return MetricDisplay(label, bool(record_metric["higher_is_better"]), decimals)
    return base


def arrow(higher_is_better: bool) -> str:
    """↑ when higher is better, ↓ otherwise."""
    return "↑" if higher_is_better else "↓"
