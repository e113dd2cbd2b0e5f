"""The Inception extractor: preprocessing, network, fingerprint.

Layers: ``pool3`` (2048), ``logits_unbiased`` (1008: pool3 · Wᵀ, no bias) and ``sfid``: the ADM
evaluator's sFID features, TF's ``mixed_6/conv:0`` sliced to its first 7 channels. In the TF graph
the eleven Inception blocks are named ``mixed`` (= Mixed_5b), ``mixed_1`` … ``mixed_10``
(= Mixed_7c), so ``mixed_6`` is Mixed_6d, and its ``conv`` is the first convolution of that block
(the 1×1 branch, ``Mixed_6d.branch1x1``). In that graph a ``conv`` scope's output tensor is the ReLU
after conv + batch norm, i.e. the output of the port's BasicConv2d. NVIDIA's TorchScript port of the
same graph names the layer ``layers.mixed_6.conv`` too. The 17×17×7 map is flattened in TF's NHWC
order (2023 values). Not verified against the .pb itself (it cannot be downloaded here).

Preprocessing runs per image on the CPU (`preprocess`, used in loader workers) and gives float32
3×299×299 in [0, 255]; `forward` normalises with (x - 128) / 128 and runs the network in
channels-last layout under inference mode.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffbench.errors import WeightsError
from diffbench.features.inception_net import InceptionNet
from diffbench.features.resize import MODES, clean_resize, normalise, tf1_bilinear

SIZE = 299
LAYERS = ("pool3", "logits_unbiased", "sfid")
WEIGHTS_NAME = "inception-2015-12-05"


@lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, computed once per (path, size, mtime)."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime)


def load_inception(weights_path: str | Path) -> InceptionNet:
    """The network with weights in torch-fidelity's format (safe loading)."""
    net = InceptionNet()
    try:
        state = torch.load(str(weights_path), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except FileNotFoundError as exc:
        raise WeightsError(f"Inception weights {weights_path} not found; run `diffbench weights "
                           f"fetch {WEIGHTS_NAME}` or pass --weights {WEIGHTS_NAME}=PATH") from exc
    except (RuntimeError, KeyError, ValueError, EOFError) as exc:
        raise WeightsError(f"{weights_path} is not an Inception weights file in torch-fidelity's "
                           f"format ({str(exc).splitlines()[0][:160]})") from exc
    return net.eval().requires_grad_(False)


@dataclass(frozen=True)
class Preprocess:
    """uint8 H×W×3 → float32 3×299×299 in [0, 255] by a resize mode (runs in loader workers)."""

    resize: str

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        if self.resize == "clean":
            return torch.from_numpy(clean_resize(image, (SIZE, SIZE))).permute(2, 0, 1).contiguous()
        x = torch.from_numpy(np.require(image, requirements=['C', 'W'])).permute(2, 0, 1)[None].float()
        return tf1_bilinear(x, (SIZE, SIZE))[0]


class InceptionExtractor:
    """The 2015 TF Inception (PyTorch port): pool3, logits_unbiased and ADM's sFID features."""

    name = WEIGHTS_NAME

    def __init__(self, weights_path: str | Path, resize: str = "tf-bilinear",
                 device: str = "cpu", fold_batchnorm: bool = True, sfid: bool = True):
        if resize not in MODES:
            raise ValueError(f"resize mode {resize!r}: expected one of {MODES}")
        self.weights_path = Path(weights_path)
        self.resize = resize
        self.device = torch.device(device)
        self.sfid = sfid
        self.fold = fold_batchnorm
        net = load_inception(weights_path)
        if fold_batchnorm:
            net.fold_batchnorm()
        self.net = net.to(self.device).to(memory_format=torch.channels_last)
        self.layers = LAYERS if sfid else LAYERS[:2]

    def preprocessor(self) -> Preprocess:
        """The per-image preprocessing, small and picklable for loader workers."""
        return Preprocess(self.resize)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 H×W×3 → float32 3×299×299 in [0, 255]."""
        return Preprocess(self.resize)(image)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Preprocessed N×3×299×299 → {layer: float32 N×D} on the CPU."""
        x = normalise(batch.to(self.device, torch.float32))
        x = x.contiguous(memory_format=torch.channels_last)
        out = self.net(x, sfid=self.sfid)
        return {k: v.float().cpu() for k, v in out.items()}

    def fingerprint(self) -> dict[str, Any]:
        """What these features are: network, weights hash, preprocessing, layers."""
        return {"extractor": self.name, "weights_sha256": file_sha256(self.weights_path),
                "resize": self.resize, "size": SIZE, "normalisation": "(x-128)/128",
                "layers": list(self.layers), "dtype": "float32"}

    def fingerprint_hash(self) -> str:
        """A short stable hash of the fingerprint (without the batch-norm folding detail)."""
        text = json.dumps(self.fingerprint(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
