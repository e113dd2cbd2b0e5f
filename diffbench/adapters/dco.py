"""`dco`: SDXL + a subject LoRA sampled with DCO's consistency (reward) guidance.

Implemented from the published formula (`diffbench.sampling.dco`):

    eps = eps_pre(uncond) + w_cfg (eps_pre(base) - eps_pre(uncond)) + w_rg (eps_ft(token) - eps_pre(base))

with w_cfg = sampler `guidance_scale` (default 7.5) and w_rg = `rg_scale` (default 3.0, DCO's
README example). The base branch sees the condition's `base_prompt` ("a dog in the jungle")
through the pretrained model (LoRA scale 0 in the UNet and in any text-encoder LoRA); the
fine-tuned branch sees the prompt with the subject token ("a sks dog in the jungle", or
"a <dog> in the jungle" with `subject_phrase="<dog>"` and DCO's learned embeddings) with the
LoRA at `lora_scale`. The unconditional embedding is SDXL's (zeros, or `negative_prompt`).

Differences from DCO's `RGPipe.my_gen`, all deliberate: batches of any size and any resolution
(RGPipe hard-codes one 1024² image); per-sample generators; the base prompt is encoded with the
text-encoder LoRA off (RGPipe leaves it on; this matters only for LoRAs with text-encoder layers,
which DCO's recipe does not train). rg_scale = 0 follows the formula (plain CFG of the pretrained
model on the base prompt); DCO's README instead samples ordinary CFG with the LoRA on the token
prompt at 0 — `rg_zero=lora-cfg` does that (it equals the `sdxl-lora` adapter).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from diffbench.adapters import diffusers_common as dc
from diffbench.adapters.base import Request
from diffbench.adapters.sd_lora import LORA_SAMPLER_ARGS, SDXLLoRAAdapter
from diffbench.errors import ConfigError
from diffbench.sampling.dco import Branch, StepHook, sample
from diffbench.sampling.seeding import make_generators

FORMULA = ("eps_pre(uncond) + guidance_scale*(eps_pre(base_prompt) - eps_pre(uncond)) "
           "+ rg_scale*(eps_ft(prompt) - eps_pre(base_prompt))")


class DCOAdapter(SDXLLoRAAdapter):
    """SDXL + LoRA with DCO consistency guidance (rg_scale); batchable, per-sample seeds."""

    sampler_args = LORA_SAMPLER_ARGS | {"rg_scale"}
    name = "dco"

    def __init__(self, base: str | None = None, lora: str | None = None,
                 lora_weight_name: str | None = None, embeddings: str | None = None,
                 tokens: str | list[str] | None = None, embeddings_weight_name: str | None = None,
                 subject_phrase: str | None = None, shared_lora: bool = False,
                 scheduler: str | None = None, vae: str | None = None,
                 variant: str | None = None, rg_zero: str = "formula",
                 device: str = "cpu", dtype: str = "fp32"):
        if lora is None:
            raise ConfigError("--model dco needs --model-arg lora=PATH_OR_HUB_ID (the DCO/"
                              "DreamBooth LoRA of the subject)")
        if rg_zero not in ("formula", "lora-cfg"):
            raise ConfigError(f"--model-arg rg_zero={rg_zero}: expected formula or lora-cfg")
        super().__init__(base=base, lora=lora, lora_weight_name=lora_weight_name,
                         embeddings=embeddings, tokens=tokens,
                         embeddings_weight_name=embeddings_weight_name,
                         subject_phrase=subject_phrase, shared_lora=shared_lora,
                         scheduler=scheduler, vae=vae, variant=variant, device=device,
                         dtype=dtype)
        self.rg_zero = rg_zero
        self.step_hook: StepHook | None = None  # sees each step's guided eps (tests, debugging)

    def unet_eps(self, x: torch.Tensor, t: torch.Tensor, branch: Branch,
                 lora_scale: float) -> torch.Tensor:
        """The UNet's noise prediction for one branch with the LoRA at `lora_scale` (0 = base)."""
        with dc.lora_scale(self.unet_layers, lora_scale):
            return self.pipe.unet(x, t, encoder_hidden_states=branch.hidden,
                                  added_cond_kwargs=branch.added, return_dict=False)[0]

    def _base_prompts(self, batch: Sequence[Request]) -> list[str]:
        missing = [r.key for r in batch if "base_prompt" not in r.condition]
        if missing:
            raise ConfigError(f"request {missing[0]}: condition has no 'base_prompt'; the dco "
                              "adapter needs prompt and base_prompt (e.g. the dreambooth reader)")
        return [str(r.condition["base_prompt"]) for r in batch]

    def branches(self, batch: Sequence[Request], s: dc.Settings) -> tuple[Branch, Branch]:
        """(pre: [uncond; base] with LoRA off, ft: token prompts with the LoRA at its scale)."""
        pipe, n = self.pipe, len(batch)
        negative = None if s.negative_prompt is None else [s.negative_prompt] * n
        with dc.lora_scale(self.text_layers, 0.0):
            base, uncond, pooled, uncond_pooled = pipe.encode_prompt(
                prompt=self._base_prompts(batch), device=self.device, num_images_per_prompt=1,
                do_classifier_free_guidance=True, negative_prompt=negative)
        with dc.lora_scale(self.text_layers, s.lora_scale):
            token, _, token_pooled, _ = pipe.encode_prompt(
                prompt=self._prompts(batch), device=self.device, num_images_per_prompt=1,
                do_classifier_free_guidance=False)
        time_ids = pipe._get_add_time_ids(
            (s.height, s.width), (0, 0), (s.height, s.width), dtype=base.dtype,
            text_encoder_projection_dim=pipe.text_encoder_2.config.projection_dim).to(self.device)
        pre = Branch(torch.cat([uncond, base]), {"text_embeds": torch.cat([uncond_pooled, pooled]),
                                                 "time_ids": time_ids.repeat(2 * n, 1)})
        ft = Branch(token, {"text_embeds": token_pooled, "time_ids": time_ids.repeat(n, 1)})
        return pre, ft

    def _generate_group(self, batch: Sequence[Request], s: dc.Settings) -> list[np.ndarray]:
        """Consistency-guided sampling of one batch sharing sampler arguments."""
        if s.rg_scale == 0 and self.rg_zero == "lora-cfg":
            return super()._generate_group(batch, s)
        from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl import (
            retrieve_timesteps,
        )

        pipe = self.pipe
        pre, ft = self.branches(batch, s)
        gens = make_generators([r.seed for r in batch], self.device)
        latents = dc.initial_latents(gens, pipe, s.height, s.width, self.device)
        timesteps, _ = retrieve_timesteps(pipe.scheduler, s.steps, self.device)
        final = sample(self.unet_eps, pipe.scheduler, latents * pipe.scheduler.init_noise_sigma,
                       timesteps, pre, ft, s.guidance_scale, s.rg_scale, s.lora_scale,
                       s.guidance_rescale, pipe.prepare_extra_step_kwargs(gens, 0.0),
                       on_step=self.step_hook)
        return dc.decode(pipe, final)

    def describe(self) -> dict[str, Any]:
        """Everything of sdxl-lora plus the guidance formula and the rg_scale = 0 convention."""
        return {**super().describe(), "guidance": FORMULA, "rg_zero": self.rg_zero}
