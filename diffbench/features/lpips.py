"""The LPIPS network (Zhang et al. 2018): torchvision backbones + the lpips package's linear layers.

The metric itself (its spec, batching and weights resolution) is `diffbench.metrics.lpips`.

``d(x0, x1) = Σ_l mean_hw( w_l · (f̂_l(x0) − f̂_l(x1))² )`` with f̂ the channel-normalised features
(``f / (‖f‖₂ + 1e-10)``, the lpips package's form) of the backbone taps below, inputs in [-1, 1]
shifted and scaled by lpips' ``ScalingLayer``, and ``w_l`` the v0.1 linear weights that ship
inside the lpips wheel (sha256-identical to torchmetrics' copies). Version 0.1 is the one every
try-on script uses (torchmetrics, HR-VITON's PerceptualSimilarity copy).

Speed: both images of a pair go through the backbone in one batch (channels-last), and since the 1×1 linear
layer commutes with the spatial mean it is applied to the per-channel means (a dot product per
layer) instead of to every pixel. Backbone weights come from a file (``diffbench.weights``:
``alexnet-imagenet``, ``squeezenet1_1-imagenet``, ``vgg16-imagenet``); only its ``features.*``
tensors are read, so a features-only file works too.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffbench.errors import MetricInputError, WeightsError, shown
from diffbench.fsutil import file_sha256

# Backbone taps as in lpips/pretrained_networks.py: [start, end) ranges of torchvision `features`.
TAPS = {
    "alex": ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)),
    "squeeze": ((0, 2), (2, 5), (5, 8), (8, 10), (10, 11), (11, 12), (12, 13)),
    "vgg": ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30)),
}
BACKBONE_WEIGHTS = {"alex": "alexnet-imagenet", "squeeze": "squeezenet1_1-imagenet",
                    "vgg": "vgg16-imagenet"}
# sha256 of lpips 0.1.4's weights/v0.1/<net>.pth (identical in torchmetrics' lpips_models/).
LINEAR_SHA256 = {
    "alex": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    "squeeze": "4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76",
    "vgg": "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
}
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10


def linear_weights_path(net: str, explicit: str | Path | None = None) -> Path:
    """The v0.1 linear-layer file of `net`: an explicit file, else the installed lpips package's."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsError(f"LPIPS linear weights {path}: file not found")
        return path
    spec = importlib.util.find_spec("lpips")
    if spec is None or spec.origin is None:
        raise WeightsError("LPIPS needs the linear-layer weights that ship with the lpips package; "
                           "`pip install lpips` (or pass --weights lpips-lin-<net>=PATH)")
    path = Path(spec.origin).parent / "weights" / "v0.1" / f"{net}.pth"
    if not path.is_file() or file_sha256(path) != LINEAR_SHA256[net]:
        raise WeightsError(f"{path}: not lpips' v0.1 {net} linear weights (missing or another "
                           "file); reinstall lpips")
    return path


def _backbone(net: str) -> nn.Sequential:
    import torchvision

    builders = {"alex": torchvision.models.alexnet, "squeeze": torchvision.models.squeezenet1_1,
                "vgg": torchvision.models.vgg16}
    return builders[net](weights=None).features


class LPIPSNet(nn.Module):
    """LPIPS v0.1 of one backbone; ``forward(x0, x1)`` → N distances (inputs N×3×H×W in [-1, 1])."""

    def __init__(self, net: str, backbone_path: str | Path, linear_path: str | Path | None = None):
        super().__init__()
        if net not in TAPS:
            raise MetricInputError(f"lpips: net {shown(net)} is not one of {', '.join(TAPS)}")
        self.net = net
        self.features = _backbone(net)
        self.backbone_path = Path(backbone_path)
        state = torch.load(self.backbone_path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        try:
            self.features.load_state_dict(feats, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{self.backbone_path}: not torchvision {net} weights "
                               f"({str(exc).splitlines()[0]})") from None
        self.linear_path = linear_weights_path(net, linear_path)
        lin = torch.load(self.linear_path, map_location="cpu", weights_only=True)
        n_layers = len(TAPS[net])
        # Each lin{l}.model.1.weight is a 1×C×1×1 conv: kept as the C-vector it multiplies.
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        for i in range(n_layers):
            self.register_buffer(f"w{i}", lin[f"lin{i}.model.1.weight"].flatten().float())
        # channels-last convolutions: measured 2x faster on the CPU (oneDNN), same numbers to 1e-7
        self.features.to(memory_format=torch.channels_last)
        self.eval().requires_grad_(False)

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The backbone activations LPIPS compares, for an already scaled input."""
        out = []
        for start, end in TAPS[self.net]:
            for i in range(start, end):
                x = self.features[i](x)
            out.append(x)
        return out

    @torch.no_grad()
    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """Per-pair LPIPS (float32, length N)."""
        if x0.shape != x1.shape or x0.ndim != 4 or x0.shape[1] != 3:
            raise MetricInputError(f"lpips: pairs must be N×3×H×W of equal shape, got "
                                   f"{tuple(x0.shape)} and {tuple(x1.shape)}")
        n = x0.shape[0]
        both = ((torch.cat((x0, x1)).float() - self.shift) / self.scale).contiguous(
            memory_format=torch.channels_last)
        total = torch.zeros(n, dtype=torch.float32, device=x0.device)
        for i, f in enumerate(self.taps(both)):
            f = f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
            diff = (f[:n] - f[n:]).pow_(2).mean(dim=(2, 3))
            total += diff @ getattr(self, f"w{i}")
        return total

    def fingerprint(self) -> dict[str, Any]:
        """What these distances are: backbone and linear weights (sha256), version, input range."""
        return {"extractor": f"lpips-{self.net}", "version": "0.1",
                "backbone_sha256": file_sha256(self.backbone_path),
                "linear_sha256": file_sha256(self.linear_path), "input": "[-1,1]",
                "normalize_eps": EPS}
