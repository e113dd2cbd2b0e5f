"""`sit-repa`: SiT / SiT+REPA class-conditional flow models with our samplers.

Loads REPA's released checkpoint (bare EMA state dict, 4 output channels), a checkpoint of REPA's
`train.py` (its ``ema``; the training step is recorded) or SiT's (learned sigma, 8 output
channels) into our own SiT (`sit_model.py`, `sit_checkpoint.py`), samples with the REPA-convention
flow samplers (t=1 noise, t=0 data; `diffbench.sampling.flow`), and decodes latents with
diffusers' `AutoencoderKL` (`stabilityai/sd-vae-ft-ema` by default, latent scale 0.18215), or
not at all (`vae=none`: a pixel-space model, as in the offline demo).

Conversion to uint8: `round` (DiT/SiT: clamp(127.5·x + 128, 0, 255), i.e. rounding) or
`truncate` (REPA: clamp(255·(x+1)/2, 0, 255) cast down). Both are recorded.

SiT's own checkpoints use the opposite time convention (t=0 noise, t=1 data, velocity pointing
to the data); with `convention=sit` the model is wrapped as v_repa(x, t) = -v_sit(x, 1 - t).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffbench.adapters.base import Adapter, Request
from diffbench.adapters.diffusers_common import DTYPES, from_pretrained, torch_dtype
from diffbench.errors import ConfigError, WeightsError, shown

SAMPLER_ARGS = frozenset({"mode", "solver", "steps", "cfg_scale", "guidance_interval",
                          "guide_channels", "last_step", "null_class", "num_classes", "labels"})


def to_uint8(x: torch.Tensor, rule: str) -> np.ndarray:
    """Images in [-1, 1], N×C×H×W → uint8 N×H×W×3 by the named rule (round or truncate)."""
    x = x.float()
    if rule == "round":
        y = torch.clamp(127.5 * x + 128.0, 0, 255).to(torch.uint8)
    elif rule == "truncate":
        y = torch.clamp(255.0 * (x + 1.0) / 2.0, 0, 255).to(torch.uint8)
    else:
        raise ConfigError(f"uint8 rule '{rule}': expected round or truncate")
    if y.shape[1] == 1:
        y = y.repeat(1, 3, 1, 1)
    return y.permute(0, 2, 3, 1).cpu().numpy()


def class_labels(requests: Sequence[Request], n_cls: int, device: str, fix: str) -> torch.Tensor:
    """The requests' class labels, each an integer in [0, `n_cls`), else a ConfigError (`fix`:
    what the message adds)."""
    for r in requests:
        label = r.condition.get("class")
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < n_cls:
            raise ConfigError(f"request {r.key}: class {shown(label)} is not an integer in "
                              f"[0, {n_cls}) for {fix}")
    return torch.tensor([r.condition["class"] for r in requests], dtype=torch.long, device=device)


def check_dtype_uint8(dtype: str, uint8: str) -> None:
    """ConfigError unless `dtype` is a known precision and `uint8` a known conversion rule."""
    torch_dtype(dtype)
    if uint8 not in ("round", "truncate"):
        raise ConfigError(f"--model-arg uint8={uint8}: expected round or truncate")


class SiTAdapter(Adapter):
    """SiT / SiT+REPA (our implementation) with REPA's samplers; SD-VAE or pixel space."""

    conditions = frozenset({"class"})
    sampler_args = SAMPLER_ARGS

    def __init__(self, ckpt: str, model: str | None = None, heads: int | None = None,
                 vae: str = "stabilityai/sd-vae-ft-ema", latent_scale: float = 0.18215,
                 uint8: str = "round", convention: str = "auto", device: str = "cpu",
                 dtype: str = "fp32"):
        super().__init__(device=device, dtype=dtype)
        from diffbench.adapters.sit_checkpoint import build_sit, read_checkpoint
        from diffbench.adapters.sit_model import PRESETS

        check_dtype_uint8(dtype, uint8)
        if not Path(ckpt).is_file():
            raise WeightsError(f"SiT checkpoint {ckpt} not found; pass --model-arg ckpt=PATH "
                               "(REPA's last.pt or SiT-XL-2-256.pt)")
        if model is not None and model not in PRESETS:
            raise ConfigError(f"--model-arg model={model}: expected one of {', '.join(PRESETS)}; "
                              "for another backbone leave model= out and give heads=N")
        checkpoint = read_checkpoint(ckpt)
        net = build_sit(checkpoint.state_dict, f"checkpoint {ckpt}",
                        PRESETS[model] if model else None, heads)
        self.net = net.to(device=device, dtype=DTYPES[dtype]).eval()
        self.checkpoint = checkpoint.describe()
        learn_sigma = self.net.config.learn_sigma
        self.convention = ("sit" if learn_sigma else "repa") if convention == "auto" else convention
        if self.convention not in ("repa", "sit"):
            raise ConfigError(f"--model-arg convention={convention}: expected auto, repa or sit")
        self.ckpt, self.model_name, self.uint8 = str(ckpt), model, uint8
        self.vae_name, self.latent_scale = vae, latent_scale
        self.vae = None if vae == "none" else _load_vae(vae, device)

    def _velocity(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.convention == "sit":
            return -self.net.forward_velocity(x, 1.0 - t, y)
        return self.net.forward_velocity(x, t, y)

    @torch.inference_mode()
    def generate(self, requests: Sequence[Request]) -> list[np.ndarray]:
        """Sample each request from its own generator; decode; convert to uint8."""
        from diffbench.sampling.flow import sample
        from diffbench.sampling.seeding import make_generators, randn_per_sample

        if not requests:
            return []
        cfg = self.net.config
        config = self.sampler_config(requests[0].sampler)
        shape = (cfg.in_channels, cfg.input_size, cfg.input_size)
        n_cls = self.net.config.num_classes
        labels = class_labels(requests, n_cls, self.device, f"this checkpoint; set the task's "
                              f"sampler num_classes to {n_cls}")
        gens = make_generators([r.seed for r in requests], self.device)
        noise = randn_per_sample(gens, shape, self.device)
        x0, stats = sample(self._velocity, noise, labels, config, gens,
                           model_dtype=DTYPES[self.dtype])
        self.last_stats = stats
        images = self._decode(x0)
        return list(to_uint8(images, self.uint8))

    def sampler_config(self, sampler: dict[str, Any]):
        """The flow sampler settings of a request; the null (CFG) class is the model's last row."""
        from diffbench.sampling.flow import SamplerConfig

        args = {k: v for k, v in sampler.items() if k not in ("num_classes", "labels")}
        args.setdefault("null_class", self.net.config.num_classes)
        return SamplerConfig.from_args(args)

    def sampler_stats(self, sampler: dict[str, Any]) -> dict[str, int]:
        """Model evaluations per image for these sampler settings (a guided one runs 2 rows)."""
        from diffbench.sampling.flow import count_nfe

        guided, unguided = count_nfe(self.sampler_config(sampler))
        return {"guided_nfe": guided, "unguided_nfe": unguided, "nfe": guided + unguided,
                "model_rows_per_image": 2 * guided + unguided}

    def _decode(self, x0: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return x0.float()
        return self.vae.decode(x0.float() / self.latent_scale).sample

    def describe(self) -> dict[str, Any]:
        """Checkpoint (file, weights taken, training step), architecture, VAE, uint8, convention."""
        arch = ("depth", "hidden", "heads", "patch", "in_channels", "input_size", "num_classes",
                "learn_sigma")
        return {**super().describe(), "ckpt": self.ckpt, "checkpoint": self.checkpoint,
                "model": self.model_name,
                "architecture": {k: getattr(self.net.config, k) for k in arch},
                "vae": self.vae_name, "latent_scale": self.latent_scale, "uint8": self.uint8,
                "convention": self.convention}


def _load_vae(name: str, device: str):
    try:
        from diffusers.models import AutoencoderKL
    except ImportError as exc:
        raise ConfigError("decoding latents needs diffusers: pip install diffusers") from exc
    vae = from_pretrained(AutoencoderKL, name, "VAE", "give a local folder with --model-arg "
                          "vae=PATH, or vae=none for a pixel-space model")
    return vae.to(device=device, dtype=torch.float32).eval()
