"""The Inception extractor: preprocessing, network, fingerprint.

Layers: ``pool3`` (2048), ``logits_unbiased`` (1008: pool3 · Wᵀ, no bias) and ``sfid``: the ADM
evaluator's sFID features, TF's ``mixed_6/conv:0`` sliced to its first 7 channels. In the TF graph
the eleven Inception blocks are named ``mixed`` (= Mixed_5b), ``mixed_1`` … ``mixed_10``
(= Mixed_7c), so ``mixed_6`` is Mixed_6d, and its ``conv`` is the first convolution of that block
(the 1×1 branch, ``Mixed_6d.branch1x1``). In that graph a ``conv`` scope's output tensor is the ReLU
after conv + batch norm, i.e. the output of the port's BasicConv2d. NVIDIA's TorchScript port of the
same graph names the layer ``layers.mixed_6.conv`` too. The 17×17×7 map is flattened in TF's NHWC
order (2023 values). Evidence: a public PyTorch sFID port runs the TorchScript layers ``conv`` …
``mixed``, ``mixed_1`` … ``mixed_5`` and then ``mixed_6.conv`` (so mixed = Mixed_5b, mixed_3 =
Mixed_6a, mixed_6 = Mixed_6d); a TF re-implementation of the December 2015 graph names each
block's branches ``conv`` (the 1×1 branch, 192 channels in the 17×17 blocks), ``tower``,
``tower_1``, ``tower_2``. Not verified against the .pb itself (it cannot be downloaded here); the
tests check the tap is Mixed_6d.branch1x1 after its ReLU and the NHWC flatten order.

Preprocessing runs per image on the CPU (`preprocess`, used in loader workers) and gives float32
3×299×299 in [0, 255]; `forward` normalises with (x - 128) / 128 and runs the network in
channels-last layout under inference mode.

On the CPU `forward` runs the network on slices of `CPU_MICRO_BATCH` images: a batch of 50 has
276 MB of activations after the second convolution, which do not stay in cache, and the whole
pass was 17% slower per image at 50 than at 8 on a 2-core AMD EPYC (70 vs 58 ms per image,
`benchmarks/bench_inception_forward.py`). With the oneDNN kernels tested (AVX2, and oneDNN
limited to SSE4.1) an image's result does not depend on the batch it is in, so slicing changes
no value; a oneDNN build that picks kernels by batch size could round differently (float32
rounding, not a different network). On CUDA the batch runs whole. On the CPU each folded conv +
ReLU is also one oneDNN call on weights packed once (`InceptionNet.prepack`, bit-identical in
the same tests, ~3% faster).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffbench.errors import WeightsError, shown
from diffbench.features import weights_names
from diffbench.features.base import fingerprint_hash
from diffbench.features.inception_net import InceptionNet
from diffbench.features.resize import MODES, clean_resize, normalise, tf1_bilinear_image
from diffbench.fsutil import file_sha256

SIZE = 299
LAYERS = ("pool3", "logits_unbiased", "sfid")
WEIGHTS_NAME = weights_names.INCEPTION
CPU_MICRO_BATCH = 8


def load_inception(weights_path: str | Path) -> InceptionNet:
    """The network with weights in torch-fidelity's format (safe loading).

    Built on the meta device and given the file's tensors (no random initialisation to overwrite).
    """
    with torch.device("meta"):
        net = InceptionNet()
    try:
        state = torch.load(str(weights_path), map_location="cpu", weights_only=True)
        net.load_state_dict(state, assign=True)
    except FileNotFoundError as exc:
        raise WeightsError(f"Inception weights {weights_path} not found; run `diffbench weights "
                           f"fetch {WEIGHTS_NAME}` or pass --weights {WEIGHTS_NAME}=PATH") from exc
    except (RuntimeError, KeyError, ValueError, EOFError) as exc:
        raise WeightsError(f"{weights_path} is not an Inception weights file in torch-fidelity's "
                           f"format ({str(exc).splitlines()[0][:160]})") from exc
    return net.float().eval().requires_grad_(False)  # float(): assign keeps the file's dtype


@dataclass(frozen=True)
class Preprocess:
    """uint8 H×W×3 → float32 3×299×299 in [0, 255] by a resize mode (runs in loader workers)."""

    resize: str

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        if self.resize == "clean":
            return torch.from_numpy(clean_resize(image, (SIZE, SIZE))).permute(2, 0, 1).contiguous()
        return torch.from_numpy(tf1_bilinear_image(image, (SIZE, SIZE)))


class InceptionExtractor:
    """The 2015 TF Inception (PyTorch port): pool3, logits_unbiased and ADM's sFID features."""

    name = WEIGHTS_NAME

    def __init__(self, weights_path: str | Path, resize: str = "tf-bilinear",
                 device: str = "cpu", exact: bool = False, sfid: bool = True,
                 micro_batch: int | None = None):
        if resize not in MODES:
            raise ValueError(f"resize mode {shown(resize)}: expected one of {MODES}")
        self.weights_path = Path(weights_path)
        self.resize = resize
        self.device = torch.device(device)
        self.sfid = sfid
        # Fast path: BatchNorm folded into the convolutions and channels-last layout (about 2×
        # on CPU). oneDNN's NHWC kernels sum in another order, so features differ from
        # torch-fidelity's by float rounding (measured: ≤ 7e-5 of the largest pool3 value);
        # `exact=True` keeps torch-fidelity's layout and gives bit-identical features on CPU.
        self.exact = exact
        self.memory_format = torch.contiguous_format if exact else torch.channels_last
        net = load_inception(weights_path)
        if not exact:
            net.fold_batchnorm()
        self.net = net.to(self.device).to(memory_format=self.memory_format)
        if not exact and self.device.type == "cpu":
            self.net.prepack()
        self.layers = LAYERS if sfid else LAYERS[:2]
        # Images per network call: CPU_MICRO_BATCH on the CPU, the whole batch (0) elsewhere.
        if micro_batch is None:
            micro_batch = CPU_MICRO_BATCH if self.device.type == "cpu" else 0
        self.micro_batch = micro_batch

    def preprocessor(self) -> Preprocess:
        """The per-image preprocessing, small and picklable for loader workers."""
        return Preprocess(self.resize)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 H×W×3 → float32 3×299×299 in [0, 255]."""
        return Preprocess(self.resize)(image)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Preprocessed N×3×299×299 → {layer: float32 N×D} on the CPU."""
        batch = batch.to(self.device, torch.float32)
        step = self.micro_batch or len(batch)
        if len(batch) <= step:
            out = self.net(normalise(batch, self.memory_format), sfid=self.sfid)
            return {k: v.float().cpu() for k, v in out.items()}
        # Each slice normalised on its own (it stays in cache for the first convolution), and
        # the logits from the whole batch's pool3: a matmul's rounding depends on its row count.
        parts = [self.net(normalise(batch[i:i + step], self.memory_format), sfid=self.sfid,
                          logits=False) for i in range(0, len(batch), step)]
        out = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        out["logits_unbiased"] = self.net.logits_unbiased(out["pool3"])
        return {k: out[k].float().cpu() for k in self.layers}

    def fingerprint(self) -> dict[str, Any]:
        """What these features are: network, weights hash, preprocessing, layers."""
        return {"extractor": self.name, "weights_sha256": file_sha256(self.weights_path),
                "resize": self.resize, "size": SIZE, "normalisation": "(x-128)/128",
                "layers": list(self.layers), "dtype": "float32"}

    def fingerprint_hash(self) -> str:
        """A short stable hash of the fingerprint (the same for `exact` and the fast path)."""
        return fingerprint_hash(self.fingerprint())
