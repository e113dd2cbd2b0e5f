"""`dit`: DiT class-conditional latent diffusion through diffusers (DiTTransformer2DModel).

Loads a DiTPipeline folder (``transformer/``, ``vae/``, optionally ``scheduler/``) from a local
path or a hub id (`facebook/DiT-XL-2-256` by default; offline, only what is in the local cache).
Sampling follows DiT's `sample.py`/`sample_ddp.py`, not diffusers' `DiTPipeline.__call__`:

- scheduler ``ddpm`` (default): DiT's sampler, 1000-step linear-beta DDPM respaced to `steps`
  evenly spaced timesteps (guided-diffusion's ``space_timesteps(1000, "250")`` equals
  ``linspace(0, 999, steps).round()``), the learned variance used (``learned_range``), no clipping
  of x0. ``ddim`` (eta 0) and ``folder`` (the scheduler saved in the pipeline folder) also exist.
- CFG as DiT's ``forward_with_cfg``: the batch is doubled (labels, then the null class
  ``num_embeds_ada_norm``), eps = u + w (c - u) on the first ``guide_channels`` channels (3, as DiT
  "for exact reproducibility"; diffusers' pipeline guides all 4), the other channels and the
  learned sigma come from the conditional half. Only the conditional half is stepped.
- Per-sample generators: the initial latents and every stochastic scheduler step of a sample are
  drawn from a `torch.Generator` seeded with its `Request.seed`, so images do not depend on the
  batch. uint8 by rounding, clamp(127.5·x + 128, 0, 255), as DiT (``uint8=truncate``: REPA's).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffbench.adapters.base import Adapter, Request
from diffbench.adapters.diffusers_common import from_pretrained
from diffbench.adapters.sit import DTYPES, check_dtype_uint8, class_labels, to_uint8
from diffbench.errors import ConfigError, WeightsError, shown

SCHEDULERS = ("ddpm", "ddim", "folder")
DEFAULTS: dict[str, Any] = {"steps": 250, "cfg_scale": 1.5, "scheduler": "ddpm",
                            "guide_channels": 3}
HOW_TO_FIX = ("pass --model-arg model=PATH to a DiTPipeline folder (transformer/, vae/), e.g. "
              "one saved by `huggingface-cli download facebook/DiT-XL-2-256 --local-dir PATH` on a "
              "machine with internet, or unset DIFFBENCH_OFFLINE/HF_HUB_OFFLINE to download it")


def parse_sampler(sampler: dict[str, Any]) -> dict[str, Any]:
    """DiT sampler settings with defaults (DiT's sample_ddp: 250 steps, cfg 1.5, ddpm, 3 channels)."""
    args = {k: v for k, v in sampler.items() if k not in ("num_classes", "labels")}
    unknown = sorted(set(args) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"dit sampler argument '{unknown[0]}' is unknown; allowed: "
                          f"{', '.join(DEFAULTS)}")
    out = {**DEFAULTS, **args}
    steps, scale, channels = out["steps"], out["cfg_scale"], out["guide_channels"]
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 1000:
        raise ConfigError(f"dit sampler steps={shown(steps)}: expected an integer in [1, 1000]")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale >= 1.0:
        raise ConfigError(f"dit sampler cfg_scale={shown(scale)}: expected a number >= 1 (1 = no CFG)")
    if out["scheduler"] not in SCHEDULERS:
        raise ConfigError(f"dit sampler scheduler={shown(out['scheduler'])}: expected one of "
                          f"{', '.join(SCHEDULERS)}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ConfigError(f"dit sampler guide_channels={shown(channels)}: expected an integer >= 1 "
                          "(3 as DiT, 4 as diffusers' DiTPipeline)")
    out["cfg_scale"] = float(scale)
    return out


class DiTAdapter(Adapter):
    """DiT (diffusers DiTTransformer2DModel + AutoencoderKL) with DiT's DDPM sampler and CFG."""

    conditions = frozenset({"class"})
    sampler_args = frozenset({*DEFAULTS, "num_classes", "labels"})

    @classmethod
    def missing(cls, args: dict[str, Any], device: str) -> list[str]:
        """Offline: the hub models (transformer, VAE) that are not in the local cache."""
        from diffbench.adapters.diffusers_common import hub_missing

        found = [hub_missing(str(args.get("model", "facebook/DiT-XL-2-256")), "model")]
        if args.get("vae"):
            found.append(hub_missing(str(args["vae"]), "vae"))
        return [p for p in found if p]

    def __init__(self, model: str = "facebook/DiT-XL-2-256", vae: str | None = None,
                 latent_scale: float | None = None, uint8: str = "round",
                 device: str = "cpu", dtype: str = "fp32"):
        super().__init__(device=device, dtype=dtype)
        from diffusers import AutoencoderKL, DiTTransformer2DModel

        check_dtype_uint8(dtype, uint8)
        self.model, self.vae_name, self.uint8 = str(model), vae or f"{model}/vae", uint8
        self.transformer = from_pretrained(DiTTransformer2DModel, self.model, "the DiT transformer",
                                           HOW_TO_FIX, subfolder="transformer")
        self.transformer = self.transformer.to(device=device, dtype=DTYPES[dtype]).eval()
        vae_kw = {} if vae else {"subfolder": "vae"}
        self.vae = from_pretrained(AutoencoderKL, vae or self.model, "the DiT VAE", HOW_TO_FIX,
                                   **vae_kw)
        self.vae = self.vae.to(device=device, dtype=torch.float32).eval()
        self.latent_scale = float(latent_scale if latent_scale is not None
                                  else self.vae.config.scaling_factor)
        cfg = self.transformer.config
        self.channels, self.size = int(cfg.in_channels), int(cfg.sample_size)
        self.num_classes = int(cfg.num_embeds_ada_norm)
        self.learn_sigma = int(self.transformer.out_channels) == 2 * self.channels

    def scheduler(self, name: str):
        """A fresh scheduler of the named kind (DiT's DDPM by default)."""
        from diffusers import DDIMScheduler, DDPMScheduler

        common = {"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 1e-4,
                  "beta_end": 0.02, "clip_sample": False, "timestep_spacing": "linspace"}
        if name == "ddpm":
            variance = "learned_range" if self.learn_sigma else "fixed_small"
            return DDPMScheduler(**common, variance_type=variance)
        if name == "ddim":
            return DDIMScheduler(**common, set_alpha_to_one=True)
        return _load_folder_scheduler(self.model)

    def _eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, args: dict) -> torch.Tensor:
        from diffbench.sampling.flow import cfg_combine

        guided = args["cfg_scale"] > 1.0
        x_in = torch.cat([x, x]) if guided else x
        y_in = torch.cat([y, torch.full_like(y, self.num_classes)]) if guided else y
        t_in = t.reshape(1).to(self.device).expand(x_in.shape[0])
        out = self.transformer(x_in.to(DTYPES[self.dtype]), timestep=t_in,
                               class_labels=y_in).sample.float()
        self.last_stats["model_rows"] += x_in.shape[0]
        self.last_stats["guided_nfe" if guided else "unguided_nfe"] += 1
        if not guided:
            return out
        cond, uncond = out.chunk(2)
        c = self.channels
        eps = cfg_combine(cond[:, :c], uncond[:, :c], args["cfg_scale"], args["guide_channels"])
        return torch.cat([eps, cond[:, c:]], dim=1)

    @torch.inference_mode()
    def generate(self, requests: Sequence[Request]) -> list[np.ndarray]:
        """Sample each request from its own generator; decode with the VAE; convert to uint8."""
        from diffbench.sampling.seeding import make_generators, randn_per_sample

        if not requests:
            return []
        args = parse_sampler(requests[0].sampler)
        labels = class_labels(requests, self.num_classes, self.device, "this DiT")
        gens = make_generators([r.seed for r in requests], "cpu")
        sched = self.scheduler(args["scheduler"])
        sched.set_timesteps(args["steps"], device=self.device)
        x = randn_per_sample(gens, (self.channels, self.size, self.size)).to(self.device)
        x = x * sched.init_noise_sigma
        self.last_stats = {"guided_nfe": 0, "unguided_nfe": 0, "model_rows": 0}
        uses_sigma = getattr(sched.config, "variance_type", None) in ("learned", "learned_range")
        for t in sched.timesteps:
            out = self._eps(sched.scale_model_input(x, t), t, labels, args)
            if not (self.learn_sigma and uses_sigma):
                out = out[:, : self.channels]
            x = sched.step(out, t, x, generator=list(gens)).prev_sample
        images = self.vae.decode(x.float() / self.latent_scale).sample
        return list(to_uint8(images, self.uint8))

    def describe(self) -> dict[str, Any]:
        """Model, VAE, latent scale, uint8 rule and the CFG/sampler conventions."""
        return {**super().describe(), "model": self.model, "vae": self.vae_name,
                "latent_scale": self.latent_scale, "uint8": self.uint8,
                "learn_sigma": self.learn_sigma, "null_class": self.num_classes,
                "sampler_defaults": DEFAULTS}


def _load_folder_scheduler(model: str):
    """The scheduler saved in a pipeline folder (scheduler/scheduler_config.json)."""
    import diffusers

    path = Path(model) / "scheduler"
    try:
        config = diffusers.DDPMScheduler.load_config(str(path) if path.is_dir() else model,
                                                     subfolder=None if path.is_dir()
                                                     else "scheduler")
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot read the scheduler of '{model}' ({exc}); use "
                           "sampler scheduler=ddpm or ddim, or " + HOW_TO_FIX) from exc
    cls = getattr(diffusers, str(config.get("_class_name", "")), None)
    if cls is None or not hasattr(cls, "from_config"):
        raise WeightsError(f"'{model}': unknown scheduler class {shown(config.get('_class_name'))}; "
                           "use sampler scheduler=ddpm or ddim")
    return cls.from_config(config)
