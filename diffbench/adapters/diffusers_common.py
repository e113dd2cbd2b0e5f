"""Shared plumbing of the diffusers-based adapters (sd-lora, sdxl-lora, dco).

Loading a pipeline, a LoRA and textual-inversion embeddings from a local path or a hub id (with
one clear `WeightsError` when they are missing or the hub cannot be reached), an exact LoRA-scale
switch, per-sample generators and initial latents, sampler-argument parsing, batching by sampler
arguments and decoding to uint8 exactly as diffusers' own pipelines do.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffbench.adapters.base import Request
from diffbench.download import is_offline
from diffbench.errors import ConfigError, WeightsError, one_line
from diffbench.fsutil import file_sha256

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SCHEDULERS = {"ddim": "DDIMScheduler", "ddpm": "DDPMScheduler", "pndm": "PNDMScheduler",
              "euler": "EulerDiscreteScheduler", "euler-a": "EulerAncestralDiscreteScheduler",
              "dpm++": "DPMSolverMultistepScheduler", "unipc": "UniPCMultistepScheduler"}
LORA_FILES = ("pytorch_lora_weights.safetensors", "pytorch_lora_weights.bin")
EMBEDDING_FILES = ("learned_embeds.safetensors", "learned_embeds.bin")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of fp32/bf16/fp16, or a ConfigError."""
    if name not in DTYPES:
        raise ConfigError(f"--dtype {name}: expected one of {', '.join(DTYPES)}")
    return DTYPES[name]


def is_hub_id(spec: str) -> bool:
    """True when `spec` is not an existing path and reads as `owner/name` (a hub repository)."""
    return not Path(spec).expanduser().exists() and bool(_HUB_ID.match(spec))


@functools.lru_cache(maxsize=1)
def _dtype_kwarg() -> str:
    # diffusers renamed from_pretrained's torch_dtype to dtype (the old name warns)
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence diffusers/transformers info logs and loading bars (the CLI owns the terminal)."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    levels = [(log, log.get_verbosity()) for log in (dlog, tlog)]
    for log, _ in levels:
        # CRITICAL, not ERROR: diffusers logs a failed LoRA load as an error before raising, and
        # every failure here becomes one WeightsError line anyway
        log.set_verbosity(log.CRITICAL)
        log.disable_progress_bar()
    try:
        yield
    finally:
        for log, level in levels:
            log.set_verbosity(level)
            log.enable_progress_bar()


def load_pipeline(pipe_cls: Any, base: str, dtype: str, device: str, variant: str | None = None,
                  vae: str | None = None, **extra: Any) -> Any:
    """`pipe_cls.from_pretrained(base)` on `device`/`dtype`; missing weights are one WeightsError."""
    dt = torch_dtype(dtype)
    kwargs: dict[str, Any] = {_dtype_kwarg(): dt, **extra}
    if variant:
        kwargs["variant"] = variant
    with quiet_loading():
        if vae:
            from diffusers import AutoencoderKL

            kwargs["vae"] = from_model_arg(AutoencoderKL, vae, "vae", **{_dtype_kwarg(): dt})
        pipe = from_model_arg(pipe_cls, base, "base", **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def check_model_spec(spec: str, arg: str) -> None:
    """Refuse, before any heavy import, a model spec that is neither a folder nor a hub id."""
    if not Path(spec).expanduser().exists() and not is_hub_id(spec):
        raise WeightsError(f"--model-arg {arg}={spec}: no such folder; give a diffusers folder "
                           "(with model_index.json or config.json) or a hub id such as "
                           "stabilityai/stable-diffusion-xl-base-1.0")


def hub_missing(spec: str, arg: str) -> str | None:
    """Why model `spec` cannot be loaded here without a download, when offline (None: a local
    folder, a hub id in the local cache, or downloads allowed); nothing is loaded."""
    if Path(spec).expanduser().exists() or not is_hub_id(spec) or not is_offline():
        return None
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(spec, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means: not in the local cache
        return (f"model '{spec}' (--model-arg {arg}) is not in the Hugging Face cache and "
                f"downloads are off (offline); download it elsewhere (`hf download {spec}`) and "
                f"copy the cache (HF_HOME), or pass --model-arg {arg}=/path/to/folder")
    return None


def from_pretrained(cls: Any, spec: str, what: str, fix: str, **kwargs: Any) -> Any:
    """`cls.from_pretrained(spec)` (a folder or a hub id; offline, the local cache only); a
    failure is one WeightsError naming `what` and `spec`, ending with `fix`."""
    local = Path(spec).expanduser()
    if is_offline():  # huggingface_hub reads only its own variable, and only at import
        kwargs.setdefault("local_files_only", True)
    try:
        return cls.from_pretrained(str(local) if local.exists() else spec, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(f"cannot load {what} '{spec}' ({one_line(exc)}); {fix}") from None


def from_model_arg(cls: Any, spec: str, arg: str, **kwargs: Any) -> Any:
    """`from_pretrained` of the model given by ``--model-arg ARG=SPEC`` (a folder or a hub id)."""
    check_model_spec(spec, arg)
    if Path(spec).expanduser().exists():
        fix = "check that it is a complete diffusers folder (save_pretrained layout)"
    else:
        fix = (f"without internet, download it elsewhere (`hf download {spec}`) and copy the "
               f"Hugging Face cache (HF_HOME), or pass --model-arg {arg}=/path/to/folder")
    return from_pretrained(cls, spec, f"{arg} model", fix, **kwargs)


def set_scheduler(pipe: Any, name: str | None) -> None:
    """Replace the checkpoint's scheduler by a named one built from the same config."""
    if name is None:
        return
    if name not in SCHEDULERS:
        raise ConfigError(f"--model-arg scheduler={name}: expected one of {', '.join(SCHEDULERS)}")
    import diffusers

    cls = getattr(diffusers, SCHEDULERS[name])
    pipe.scheduler = cls.from_config(pipe.scheduler.config)


def resolve_file(spec: str, defaults: Sequence[str], weight_name: str | None, arg: str) -> Path:
    """A local file for `spec`: itself, `weight_name`/a default file in a folder, or a hub download."""
    local = Path(spec).expanduser()
    if local.is_file():
        return local
    if local.is_dir():
        names = [weight_name] if weight_name else list(defaults)
        for name in names:
            if (local / name).is_file():
                return local / name
        raise WeightsError(f"--model-arg {arg}={spec}: the folder has none of {', '.join(names)}; "
                           f"name the file with --model-arg {arg}_weight_name=FILE")
    if not is_hub_id(spec):
        raise WeightsError(f"--model-arg {arg}={spec}: no such file or folder; give a local "
                           ".safetensors file, a folder holding one, or a hub id (owner/name)")
    from huggingface_hub import hf_hub_download

    name = weight_name or defaults[0]
    try:
        return Path(hf_hub_download(spec, name, local_files_only=is_offline()))
    except Exception as exc:  # hub errors have many types; every one means "not available here"
        raise WeightsError(f"cannot get {name} of '{spec}' from the Hugging Face hub "
                           f"({one_line(exc)}); without internet, download it elsewhere "
                           f"(`hf download {spec} {name}`) and pass --model-arg {arg}=/path/to/"
                           f"{name}") from None


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file, or of a .bin/.pt file loaded with weights_only=True."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign files raise many types
        raise WeightsError(f"{path}: cannot read weights ({one_line(exc)}); re-download or "
                           "re-export the file") from None


def load_lora(pipe: Any, spec: str, weight_name: str | None = None,
              adapter_name: str = "subject") -> dict[str, Any]:
    """Load a diffusers/peft (or kohya) LoRA into the pipeline; returns what the record needs."""
    path = resolve_file(spec, LORA_FILES, weight_name, "lora")
    state = load_state_dict(path)
    try:
        with quiet_loading():
            pipe.load_lora_weights(state, adapter_name=adapter_name)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise WeightsError(f"{path}: not a LoRA for this base model ({one_line(exc)}); check "
                           "--model-arg base and lora belong together") from None
    if not lora_layers(pipe.unet):
        raise WeightsError(f"{path}: no UNet LoRA layers were loaded from it; is it a LoRA of "
                           "this base model?")
    return {"lora": spec, "lora_file": str(path), "lora_sha256": file_sha256(path)}


def load_embeddings(pipe: Any, spec: str, tokens: str | Sequence[str] | None,
                    weight_name: str | None = None) -> dict[str, Any]:
    """Textual-inversion embeddings: SDXL {clip_l, clip_g} (DCO's file) or diffusers/A1111 files."""
    path = resolve_file(spec, EMBEDDING_FILES, weight_name, "embeddings")
    state = load_state_dict(path)
    toks = [tokens] if isinstance(tokens, str) else list(tokens or [])
    xl = getattr(pipe, "text_encoder_2", None) is not None
    try:
        with quiet_loading():
            if xl:
                if not {"clip_l", "clip_g"} <= set(state) or not toks:
                    raise WeightsError(f"{path}: SDXL embeddings need keys clip_l and clip_g "
                                       "(DCO's learned_embeds.safetensors) and --model-arg "
                                       "tokens=<tok> naming the new token(s)")
                for key, suffix in (("clip_l", ""), ("clip_g", "_2")):
                    pipe.load_textual_inversion(state[key], token=toks,
                                                text_encoder=getattr(pipe, "text_encoder" + suffix),
                                                tokenizer=getattr(pipe, "tokenizer" + suffix))
            else:
                pipe.load_textual_inversion(state, token=toks or None)
    except ValueError as exc:
        raise WeightsError(f"{path}: cannot add the embeddings ({one_line(exc)}); check "
                           "--model-arg tokens (one token per vector, or one for all)") from None
    return {"embeddings": spec, "embeddings_file": str(path),
            "embeddings_sha256": file_sha256(path), "tokens": toks}


def unload_embeddings(pipe: Any) -> None:
    """Remove every added (non-special) token and its embedding rows from all text encoders."""
    pairs = [("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")]
    for tok, enc in pairs:
        if getattr(pipe, enc, None) is not None:
            pipe.unload_textual_inversion(tokenizer=getattr(pipe, tok),
                                          text_encoder=getattr(pipe, enc))


def lora_layers(module: torch.nn.Module | None) -> list[Any]:
    """The peft LoRA layers inside a module (empty when none is loaded)."""
    if module is None:
        return []
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in module.modules() if isinstance(m, BaseTunerLayer)]


@contextlib.contextmanager
def lora_scale(layers: Sequence[Any], scale: float) -> Iterator[None]:
    """Multiply every loaded LoRA's scaling by `scale` inside the block, restoring it exactly.

    diffusers' own `cross_attention_kwargs={"scale": s}` divides back after the call (rounding
    drift over calls) and resets scale 0 to 1, so the scale is set and restored here instead.
    """
    saved = [dict(layer.scaling) for layer in layers]
    try:
        for layer, orig in zip(layers, saved, strict=True):
            for name, value in orig.items():
                layer.scaling[name] = value * scale
        yield
    finally:
        for layer, orig in zip(layers, saved, strict=True):
            layer.scaling.update(orig)


def initial_latents(gens: Sequence[torch.Generator], pipe: Any, height: int, width: int,
                    device: str) -> torch.Tensor:
    """Row i drawn from gens[i] alone, as diffusers' `randn_tensor` draws with one generator.

    A request's latents therefore equal those of a plain diffusers pipeline called with
    `generator=torch.Generator(device).manual_seed(seed)` and batch size 1.
    """
    shape = (1, pipe.unet.config.in_channels, height // pipe.vae_scale_factor,
             width // pipe.vae_scale_factor)
    dtype = pipe.unet.dtype
    return torch.cat([torch.randn(shape, generator=g, device=device, dtype=dtype) for g in gens])


@dataclass(frozen=True)
class Settings:
    """Sampler arguments of one batch, defaults filled in."""

    steps: int = 50
    guidance_scale: float = 7.5
    rg_scale: float = 3.0
    lora_scale: float = 1.0
    guidance_rescale: float = 0.0
    height: int | None = None
    width: int | None = None
    negative_prompt: str | None = None


def parse_settings(sampler: dict[str, Any], pipe: Any) -> Settings:
    """Typed settings from a request's sampler arguments; image size defaults to the UNet's."""
    default = pipe.unet.config.sample_size * pipe.vae_scale_factor
    try:
        s = Settings(**{k: v for k, v in sampler.items() if k in Settings.__dataclass_fields__})
        s = Settings(steps=int(s.steps), guidance_scale=float(s.guidance_scale),
                     rg_scale=float(s.rg_scale), lora_scale=float(s.lora_scale),
                     guidance_rescale=float(s.guidance_rescale),
                     height=int(s.height or default), width=int(s.width or default),
                     negative_prompt=None if s.negative_prompt is None else str(s.negative_prompt))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"sampler arguments {sampler}: {exc}") from None
    step = 8 if pipe.vae_scale_factor >= 8 else pipe.vae_scale_factor
    if s.height % step or s.width % step or s.steps < 1:
        raise ConfigError(f"sampler: height/width must be multiples of {step} and steps >= 1 "
                          f"(got {s.height}×{s.width}, {s.steps} steps)")
    return s


def group_requests(requests: Sequence[Request]) -> list[tuple[str | None, dict[str, Any], list[int]]]:
    """(subject, sampler arguments, indices) groups in first-seen order (one batch each)."""
    groups: dict[tuple[Any, str], tuple[str | None, dict[str, Any], list[int]]] = {}
    for i, req in enumerate(requests):
        subject = req.condition.get("subject")
        key = (subject, json.dumps(req.sampler, sort_keys=True, default=str))
        groups.setdefault(key, (subject, req.sampler, []))[2].append(i)
    return list(groups.values())


def subject_prompt(condition: dict[str, Any], phrase: str | None, where: str) -> str:
    """The prompt with the subject token; `phrase` rewrites its "<token> <class>" part.

    E.g. phrase "<dog>" turns "a sks dog in the jungle" into "a <dog> in the jungle" (DCO's
    comprehensive-caption style, where a learned token replaces "sks dog").
    """
    if "prompt" not in condition:
        raise ConfigError(f"{where}: condition has no 'prompt' (keys: {sorted(condition)})")
    prompt = str(condition["prompt"])
    if phrase is None:
        return prompt
    token, cls = condition.get("token"), condition.get("class")
    old = f"{token} {cls}"
    if token is None or cls is None or old not in prompt:
        raise ConfigError(f"{where}: --model-arg subject_phrase needs 'token' and 'class' in the "
                          f"condition and '{old}' in the prompt '{prompt}'")
    new = phrase.format(**{"token": token, "class": cls, "subject": condition.get("subject", "")})
    return prompt.replace(old, new)


def decode(pipe: Any, latents: torch.Tensor) -> list[np.ndarray]:
    """Latents → uint8 H×W×3 images the way diffusers' SD/SDXL pipelines decode and save them."""
    vae = pipe.vae
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if upcast:
        vae.to(dtype=torch.float32)
        latents = latents.to(torch.float32)
    mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
    if mean is not None and std is not None:
        mean_t = torch.tensor(mean).view(1, -1, 1, 1).to(latents.device, latents.dtype)
        std_t = torch.tensor(std).view(1, -1, 1, 1).to(latents.device, latents.dtype)
        latents = latents * std_t / vae.config.scaling_factor + mean_t
    else:
        latents = latents / vae.config.scaling_factor
    image = vae.decode(latents.to(vae.dtype), return_dict=False)[0]
    if upcast:
        vae.to(dtype=torch.float16)
    if getattr(pipe, "watermark", None) is not None:
        image = pipe.watermark.apply_watermark(image)
    arr = pipe.image_processor.postprocess(image, output_type="np")
    return list((arr * 255).round().astype(np.uint8))  # diffusers' numpy_to_pil rule
