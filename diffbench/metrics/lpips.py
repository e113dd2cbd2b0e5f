"""LPIPS of each generated image to its ground truth: the metric's spec and its batched compute.

The network (backbone taps, the lpips package's v0.1 linear layers, channels-last) is
`diffbench.features.lpips.LPIPSNet`; `lpips_model` builds it from resolved weights files and keeps
a few loaded across the points of a sweep.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffbench.metrics.args import PAIRED_PREP_ARGS, Arg
from diffbench.metrics.spec import MetricSpec, Needs, Output

if TYPE_CHECKING:
    import torch

NETS = ("alex", "squeeze", "vgg")
# Pixels of the image pairs per LPIPS call. CPU: measured (1 thread, SqueezeNet, channels-last)
# one 512x384 or 1024x768 pair per call is fastest (0.09 s, 0.69 s per pair; 4 per call 0.17 s,
# 0.83 s): activations stay in cache. Smaller images are grouped up to the same pixel count.
LPIPS_PIXELS = {"cpu": 512 * 384, "cuda": 64 * 1024 * 768}
_NETS: OrderedDict[tuple, Any] = OrderedDict()


def lpips_weights(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The backbone weights (registry name) LPIPS loads for ``settings["net"]``."""
    from diffbench.features.lpips import BACKBONE_WEIGHTS

    return (BACKBONE_WEIGHTS[settings["net"]],)


def lpips_model(settings: Mapping[str, Any], weights: Mapping[str, str], device: str) -> Any:
    """The LPIPS network of ``settings["net"]`` with resolved weights (kept across sweep points)."""
    from diffbench.features.lpips import LPIPSNet
    from diffbench.weights import resolve

    net = settings["net"]
    path = Path(resolve(lpips_weights(settings)[0], dict(weights)))
    linear = weights.get(f"lpips-lin-{net}")
    st = path.stat()
    key = (net, str(path.resolve()), st.st_size, st.st_mtime_ns, linear, device)
    if key not in _NETS:
        _NETS[key] = LPIPSNet(net, path, linear).to(device)
        while len(_NETS) > 3:
            _NETS.popitem(last=False)
    _NETS.move_to_end(key)
    return _NETS[key]


def lpips_values(gt: torch.Tensor, pred: torch.Tensor, *, model: Any) -> torch.Tensor:
    """Per-pair LPIPS (float64) of uint8 N×3×H×W batches, in calls of a bounded pixel count."""
    import torch

    # (x/255)*2-1 in float32: ToTensor then the scripts' [-1, 1] mapping
    budget = LPIPS_PIXELS["cuda" if gt.device.type == "cuda" else "cpu"]
    chunk = max(1, budget // (gt.shape[-2] * gt.shape[-1]))
    out = [model((gt[i:i + chunk].float() / 255) * 2 - 1,
                 (pred[i:i + chunk].float() / 255) * 2 - 1)
           for i in range(0, gt.shape[0], chunk)]
    return torch.cat(out).double()


LPIPS = MetricSpec(
    name="lpips", family="paired",
    summary="Learned perceptual distance of each generated image to its ground truth (lower is "
            "better)",
    outputs=(Output("lpips", "LPIPS", False, 4, {"abs": 0.005}),),
    compute=lpips_values, needs=Needs(against="ground_truth"), model=lpips_model,
    weights=lpips_weights,
    args={
        "net": Arg("str", "alex", "backbone: alex, squeeze or vgg (v0.1 linear layers)",
                   choices=NETS),
        **PAIRED_PREP_ARGS,
    })
