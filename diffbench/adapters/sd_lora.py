"""`sd-lora` and `sdxl-lora`: DreamBooth-LoRA baselines sampled through diffusers' own pipelines.

The base model (a diffusers folder or hub id) gets the subject's LoRA (`load_lora_weights`) and
optional textual-inversion embeddings, then each batch of requests runs the plain pipeline
(classifier-free guidance with the LoRA active in both branches) on the prompt with the subject
token. Initial latents are drawn per request from `torch.Generator(device).manual_seed(seed)`,
exactly as a diffusers pipeline called with that generator and batch size 1 draws them, and the
same generators drive stochastic schedulers, so an image never depends on its batch.

One LoRA per subject: `{subject}` in `lora`, `lora_weight_name`, `embeddings`,
`embeddings_weight_name` or `tokens` is replaced by the request's `condition["subject"]`, and the
adapter swaps weights when the subject changes (requests come sorted by key, so subject by
subject). A fixed LoRA refuses a second subject unless `shared_lora=true` (e.g. a style LoRA).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from diffbench.adapters import diffusers_common as dc
from diffbench.adapters.base import Adapter, Request
from diffbench.errors import ConfigError, shown
from diffbench.sampling.seeding import make_generators

LORA_SAMPLER_ARGS = frozenset({"steps", "guidance_scale", "height", "width", "negative_prompt",
                               "lora_scale", "guidance_rescale"})
SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"
SD_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"
_SUBJECT = "{subject}"


def _fill(value: Any, subject: str | None) -> Any:
    """`value` with {subject} replaced (strings and lists of strings); None stays None."""
    if value is None or subject is None:
        return value
    if isinstance(value, str):
        return value.replace(_SUBJECT, subject)
    return [str(v).replace(_SUBJECT, subject) for v in value]


class LoRAPipelineAdapter(Adapter):
    """A diffusers text-to-image pipeline with a subject LoRA and optional learned tokens."""

    conditions = frozenset({"prompt"})
    sampler_args: ClassVar[frozenset[str]] = LORA_SAMPLER_ARGS
    pipeline_class: ClassVar[str] = "StableDiffusionXLPipeline"
    name: ClassVar[str] = "sdxl-lora"
    default_base: ClassVar[str] = SDXL_BASE

    def __init__(self, base: str | None = None, lora: str | None = None,
                 lora_weight_name: str | None = None, embeddings: str | None = None,
                 tokens: str | list[str] | None = None, embeddings_weight_name: str | None = None,
                 subject_phrase: str | None = None, shared_lora: bool = False,
                 scheduler: str | None = None, vae: str | None = None,
                 variant: str | None = None, device: str = "cpu", dtype: str = "fp32"):
        super().__init__(device=device, dtype=dtype)
        base = str(base or self.default_base)
        if subject_phrase is not None and not isinstance(subject_phrase, str):
            raise ConfigError(f"--model-arg subject_phrase={shown(subject_phrase)}: expected text such "
                              "as '<dog>' (quote YAML braces: '\"{token} {class}\"')")
        dc.check_model_spec(base, "base")
        dc.torch_dtype(dtype)
        import diffusers

        extra = {}
        if self.pipeline_class == "StableDiffusionPipeline":
            # benchmark images are scored as generated: no NSFW blanking
            extra = {"safety_checker": None, "requires_safety_checker": False}
        self.pipe = dc.load_pipeline(getattr(diffusers, self.pipeline_class), base, dtype,
                                     device, variant=variant, vae=vae, **extra)
        dc.set_scheduler(self.pipe, scheduler)
        self.weights = {"lora": lora, "lora_weight_name": lora_weight_name,
                        "embeddings": embeddings, "tokens": tokens,
                        "embeddings_weight_name": embeddings_weight_name}
        self.per_subject = any(_SUBJECT in str(v) for v in self.weights.values() if v is not None)
        self.info: dict[str, Any] = {"base": base, "pipeline": self.pipeline_class, "vae": vae,
                                     "variant": variant, "subject_phrase": subject_phrase,
                                     "per_subject": self.per_subject, "shared_lora": shared_lora,
                                     **self.weights}
        self.loaded: dict[str, dict[str, Any]] = {}  # subject ("*" if fixed) -> files and sha256
        self.subject_phrase, self.shared_lora = subject_phrase, bool(shared_lora)
        self.current: str | None = None
        self.seen_subject: str | None = None
        if not self.per_subject:
            self._load_weights(None)  # fail fast on a missing file
        self._refresh_layers()

    # ---- weights -----------------------------------------------------------------------------

    def _load_weights(self, subject: str | None) -> None:
        w = {k: _fill(v, subject) for k, v in self.weights.items()}
        info: dict[str, Any] = {}
        if w["lora"] is not None:
            info.update(dc.load_lora(self.pipe, str(w["lora"]), w["lora_weight_name"]))
        if w["embeddings"] is not None:
            info.update(dc.load_embeddings(self.pipe, str(w["embeddings"]), w["tokens"],
                                           w["embeddings_weight_name"]))
        self.pipe.to(self.device)  # new token rows and LoRA layers are created on the CPU
        self.loaded[subject or "*"] = info
        self.current = subject

    def _unload_weights(self) -> None:
        if self.weights["lora"] is not None:
            self.pipe.unload_lora_weights()
        if self.weights["embeddings"] is not None:
            dc.unload_embeddings(self.pipe)
        self.current = None

    def _refresh_layers(self) -> None:
        """Find the LoRA layers again (loading and unloading replace modules)."""
        self.unet_layers = dc.lora_layers(self.pipe.unet)
        self.text_layers = [layer for n in ("text_encoder", "text_encoder_2")
                            for layer in dc.lora_layers(getattr(self.pipe, n, None))]
        self.layers = self.unet_layers + self.text_layers

    def _use_subject(self, subject: str | None, key: str) -> None:
        """Make the subject's weights active (per-subject), or check a fixed LoRA's subject."""
        if not self.per_subject:
            if self.weights["lora"] is None or self.shared_lora or subject is None:
                return
            if self.seen_subject not in (None, subject):
                raise ConfigError(
                    f"request {key}: subject '{subject}' after '{self.seen_subject}' with one fixed "
                    "LoRA; give one LoRA per subject (--model-arg 'lora=out/{subject}'), keep one "
                    "subject (--set tasks.<task>.dataset.args.subjects=[...]), or pass "
                    "--model-arg shared_lora=true for a LoRA meant for every subject")
            self.seen_subject = subject
            return
        if subject is None:
            raise ConfigError(f"request {key}: per-subject weights ({{subject}} in a model arg) "
                              "need condition['subject'] (the dreambooth reader gives it)")
        if subject != self.current:
            with dc.quiet_loading():
                self._unload_weights()
            self._load_weights(subject)
            self._refresh_layers()

    # ---- generation --------------------------------------------------------------------------

    def _prompts(self, requests: Sequence[Request]) -> list[str]:
        return [dc.subject_prompt(r.condition, self.subject_phrase, f"request {r.key}")
                for r in requests]

    @torch.inference_mode()
    def generate(self, requests: Sequence[Request]) -> list[np.ndarray]:
        """One uint8 image per request; other subjects or sampler arguments run apart."""
        out: list[np.ndarray | None] = [None] * len(requests)
        for subject, sampler, idx in dc.group_requests(requests):
            batch = [requests[i] for i in idx]
            self._use_subject(subject, batch[0].key)
            images = self._generate_group(batch, dc.parse_settings(sampler, self.pipe))
            for i, img in zip(idx, images, strict=True):
                out[i] = img
        return out  # type: ignore[return-value]

    def _generate_group(self, batch: Sequence[Request], s: dc.Settings) -> list[np.ndarray]:
        """Plain CFG through the pipeline, LoRA at `lora_scale` in every call."""
        gens = make_generators([r.seed for r in batch], self.device)
        latents = dc.initial_latents(gens, self.pipe, s.height, s.width, self.device)
        negative = None if s.negative_prompt is None else [s.negative_prompt] * len(batch)
        with dc.lora_scale(self.layers, s.lora_scale):
            arr = self.pipe(prompt=self._prompts(batch), negative_prompt=negative,
                            num_inference_steps=s.steps, guidance_scale=s.guidance_scale,
                            guidance_rescale=s.guidance_rescale, height=s.height, width=s.width,
                            latents=latents, generator=gens, output_type="np").images
        return list((arr * 255).round().astype(np.uint8))  # diffusers' numpy_to_pil rule

    def describe(self) -> dict[str, Any]:
        """Base model, LoRA/embedding files and sha256 (per subject once loaded), scheduler."""
        import diffusers

        sched = self.pipe.scheduler
        files = self.loaded.get("*", {}) if not self.per_subject else {"weights": self.loaded}
        return {**super().describe(), "adapter": self.name, **self.info, **files,
                "scheduler": type(sched).__name__,
                "scheduler_config": {k: v for k, v in dict(sched.config).items()
                                     if not k.startswith("_")},
                "default_size": self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor,
                "diffusers": diffusers.__version__}


class SDXLLoRAAdapter(LoRAPipelineAdapter):
    """SDXL + DreamBooth LoRA (+ optional learned tokens), plain CFG via diffusers' SDXL pipeline
    (the base class's defaults)."""


class SDLoRAAdapter(LoRAPipelineAdapter):
    """Stable Diffusion 1.x/2.x + DreamBooth LoRA (+ optional embeddings), plain CFG via diffusers."""

    pipeline_class = "StableDiffusionPipeline"
    name = "sd-lora"
    default_base = SD_BASE
