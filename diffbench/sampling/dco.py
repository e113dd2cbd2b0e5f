"""DCO's consistency ("reward") guidance: the formula and how its UNet calls are batched.

Per denoising step (Lee et al., "Direct Consistency Optimization", `reward_guidance.py` RGPipe):

    eps = eps_pre(uncond) + w_cfg * (eps_pre(base) - eps_pre(uncond))
                          + w_rg  * (eps_ft(prompt with token) - eps_pre(base))

`eps_pre` is the pretrained model (LoRA scale 0), `eps_ft` the fine-tuned one (LoRA at its
scale). "base" is the prompt without the subject token ("a dog in the jungle"), the token prompt
is "a sks dog in the jungle" (or "a <dog> in the jungle" with DCO's learned token). Two UNet calls
per step: one batched call [uncond × N, base × N] with the LoRA off, one call [token × N] with
the LoRA on; with w_rg = 0 the second call is skipped (its term is zero), so the step is plain
classifier-free guidance of the pretrained model on the base prompt.

This module knows no diffusers: the UNet is a callable `(x, t, branch, lora_scale) -> eps` and
the scheduler anything with `scale_model_input` and `step` (diffusers' schedulers fit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Branch:
    """Conditioning of one batched UNet call: text hidden states plus added conditions (SDXL)."""

    hidden: torch.Tensor
    added: dict[str, torch.Tensor] = field(default_factory=dict)


UNetFn = Callable[[torch.Tensor, torch.Tensor, Branch, float], torch.Tensor]
StepHook = Callable[[int, torch.Tensor, torch.Tensor], None]


def consistency_guidance(eps_uncond: torch.Tensor, eps_base: torch.Tensor,
                         eps_ft: torch.Tensor | None, w_cfg: float, w_rg: float) -> torch.Tensor:
    """eps_u + w_cfg (eps_base - eps_u) + w_rg (eps_ft - eps_base); eps_ft may be None if w_rg=0.

    The CFG part is evaluated exactly as diffusers writes it (u + w * (c - u)), so with w_rg = 0
    the result is bit-identical to a diffusers pipeline's guided noise prediction.
    """
    eps = eps_uncond + w_cfg * (eps_base - eps_uncond)
    if w_rg == 0:
        return eps
    if eps_ft is None:
        raise ValueError("consistency guidance with w_rg != 0 needs eps_ft")
    return eps + w_rg * (eps_ft - eps_base)


def rescale_guidance(eps: torch.Tensor, eps_text: torch.Tensor, phi: float) -> torch.Tensor:
    """Guidance rescale (Lin et al. 2023, eq. 15-16): match eps's per-sample std to eps_text's."""
    dims = list(range(1, eps.ndim))
    rescaled = eps * (eps_text.std(dim=dims, keepdim=True) / eps.std(dim=dims, keepdim=True))
    return phi * rescaled + (1 - phi) * eps


def guided_eps(unet: UNetFn, x_in: torch.Tensor, t: torch.Tensor, pre: Branch, ft: Branch,
               w_cfg: float, w_rg: float, lora_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(guided eps, eps_pre(base)) for scaled model input `x_in` [N, ...] at timestep `t`.

    `pre` holds 2N rows [uncond; base]; `ft` holds N rows (token prompt).
    """
    both = unet(torch.cat([x_in, x_in]), t, pre, 0.0)
    eps_uncond, eps_base = both.chunk(2)
    eps_ft = unet(x_in, t, ft, lora_scale) if w_rg != 0 else None
    return consistency_guidance(eps_uncond, eps_base, eps_ft, w_cfg, w_rg), eps_base


def sample(unet: UNetFn, scheduler: Any, latents: torch.Tensor, timesteps: Sequence[Any],
           pre: Branch, ft: Branch, w_cfg: float, w_rg: float, lora_scale: float = 1.0,
           guidance_rescale: float = 0.0, step_kwargs: dict[str, Any] | None = None,
           on_step: StepHook | None = None) -> torch.Tensor:
    """Run the scheduler over `timesteps` with consistency guidance; returns the final latents.

    `latents` are already multiplied by the scheduler's initial noise sigma; `step_kwargs` are
    passed to `scheduler.step` (per-sample generators for stochastic schedulers); `on_step(i, t,
    eps)` sees each step's guided noise prediction.
    """
    kwargs = step_kwargs or {}
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)
    for i, t in enumerate(timesteps):
        x_in = scheduler.scale_model_input(latents, t)
        eps, eps_base = guided_eps(unet, x_in, t, pre, ft, w_cfg, w_rg, lora_scale)
        if guidance_rescale > 0:
            eps = rescale_guidance(eps, eps_base, guidance_rescale)
        if on_step is not None:
            on_step(i, t, eps)
        latents = scheduler.step(eps, t, latents, **kwargs, return_dict=False)[0]
    return latents
