"""Reading SiT / SiT+REPA checkpoints safely and building our SiT from them, strictly.

Formats: a bare state dict (REPA's released `last.pt`, SiT's and DiT's files), `.safetensors`,
and training checkpoints that keep the weights under ``ema``, ``model`` or ``state_dict`` (EMA
first). REPA's `train.py` saves ``{"model", "ema", "opt", "args": argparse.Namespace, "steps"}``;
`torch.load(weights_only=True)` refuses the Namespace, so it alone is allowlisted, for this load
only. Anything else that is not a tensor or a plain container (a custom class, a function such
as ``os.system``) is still refused.

The number of attention heads is not stored in a checkpoint: it comes from the SiT/DiT/REPA
model family (S, B, L, XL at any patch size) when depth and width match one, else from the
caller (``--model-arg heads=N``); it is never guessed.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from diffbench.adapters.sit_model import PRESETS, SiT, SiTConfig
from diffbench.errors import ConfigError, WeightsError, one_line, shown

# (depth, hidden) -> heads of SiT-S/B/L/XL (REPA's and SiT's `models/sit.py`, DiT's `models.py`;
# the same for patch 2, 4 and 8).
FAMILY_HEADS = {(12, 384): 6, (12, 768): 12, (24, 1024): 16, (28, 1152): 16}
# REPA's train.py saves its argparse arguments beside the weights; nothing else is allowlisted.
SAFE_GLOBALS = (argparse.Namespace,)
WEIGHT_ENTRIES = ("ema", "model", "state_dict")  # the first one found is loaded


@dataclass(frozen=True)
class Checkpoint:
    """The tensors of a checkpoint and what the training run stored beside them."""

    state_dict: dict[str, torch.Tensor]
    entry: str | None = None  # the key the weights were under; None: a bare state dict
    steps: int | None = None  # the training step (REPA's "steps")
    args: dict[str, Any] | None = field(default=None)  # the training arguments, as a plain dict

    def describe(self) -> dict[str, Any]:
        """What the results record keeps: which weights were taken, at which training step."""
        return {"weights": self.entry or "state dict", "training_steps": self.steps,
                "training_args": self.args}


def _torch_load(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise WeightsError(f"cannot read SiT checkpoint {path} ({one_line(exc)}); is it a "
                               "complete .pt file?") from None
        raise WeightsError(
            f"SiT checkpoint {path} holds a Python object '{found.group(1)}' that diffbench does "
            "not unpickle (it loads only tensors, plain containers and argparse.Namespace); if "
            "you trust the file, save its weights alone: torch.save(torch.load(PATH, "
            "weights_only=False)['ema'], 'ema.pt')") from None


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """The weights of a checkpoint file (EMA first), with REPA's training step and arguments."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"SiT checkpoint {path} not found; give REPA's last.pt or SiT-XL-2-256.pt")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            obj = load_file(str(path))
        else:
            obj = _torch_load(path)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any read failure is a user-facing weights problem
        raise WeightsError(f"cannot read SiT checkpoint {path} ({type(exc).__name__}: "
                           f"{one_line(exc)}); is it a complete .pt/.safetensors file?") from None
    entry, meta = None, {}
    if isinstance(obj, dict):
        entry = next((k for k in WEIGHT_ENTRIES if isinstance(obj.get(k), dict)), None)
        if entry is not None:
            meta, obj = obj, obj[entry]
    if not isinstance(obj, dict) or not obj or \
            not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"SiT checkpoint {path} is not a state dict (nor one under "
                           f"{'/'.join(repr(k) for k in WEIGHT_ENTRIES)})")
    steps = meta.get("steps")
    args = meta.get("args")
    return Checkpoint(
        state_dict={re.sub(r"^(module\.|_orig_mod\.)+", "", k): v for k, v in obj.items()},
        entry=entry, steps=int(steps) if isinstance(steps, int) else None,
        args=_plain(vars(args)) if isinstance(args, argparse.Namespace) else
        (_plain(args) if isinstance(args, dict) else None))


def _heads(depth: int, hidden: int, heads: int | None, where: str) -> int:
    if heads is not None:
        if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1 or hidden % heads:
            raise ConfigError(f"--model-arg heads={shown(heads)}: expected a positive integer that "
                              f"divides the hidden size {hidden} of {where}")
        return heads
    if (depth, hidden) in FAMILY_HEADS:
        return FAMILY_HEADS[depth, hidden]
    raise ConfigError(
        f"SiT {where}: depth {depth}, hidden size {hidden} is not a SiT/DiT model (S, B, L, XL) "
        "and a checkpoint does not store its number of attention heads; pass the number the "
        "model was trained with: --model-arg heads=N")


def _shapes(sd: dict[str, torch.Tensor], where: str) -> dict[str, Any]:
    """Every SiTConfig field but heads, from the state dict's keys and shapes."""
    try:
        hidden, in_ch, patch, _ = sd["x_embedder.proj.weight"].shape
        tokens = sd["pos_embed"].shape[1]
        rows = sd["y_embedder.embedding_table.weight"].shape[0]
        mlp_hidden = sd["blocks.0.mlp.fc1.weight"].shape[0]
        out = sd["final_layer.linear.weight"].shape[0]
    except KeyError as exc:
        raise WeightsError(f"SiT {where} lacks key {exc}; is it a SiT/REPA/DiT checkpoint?") from exc
    if out not in (patch * patch * in_ch, 2 * patch * patch * in_ch):
        raise WeightsError(f"SiT {where}: final_layer.linear has {out} outputs; expected "
                           f"{patch * patch * in_ch} or {2 * patch * patch * in_ch}")
    depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k)))
    proj_ids = sorted({int(m.group(1)) for k in sd if (m := re.match(r"projectors\.(\d+)\.", k))})
    proj_dims = tuple(sd[f"projectors.{j}.4.weight"].shape[0] for j in proj_ids
                      if f"projectors.{j}.4.weight" in sd)
    proj_hidden = sd["projectors.0.0.weight"].shape[0] if "projectors.0.0.weight" in sd else 2048
    return {"depth": depth, "hidden": hidden, "patch": patch, "in_channels": in_ch,
            "input_size": int(round(math.sqrt(tokens))) * patch, "num_classes": rows - 1,
            "learn_sigma": out != patch * patch * in_ch, "mlp_ratio": mlp_hidden / hidden,
            "projector_dims": proj_dims, "projector_hidden": proj_hidden,
            "encoder_depth": min(8, depth)}


def infer_config(sd: dict[str, torch.Tensor], where: str = "checkpoint",
                 heads: int | None = None) -> SiTConfig:
    """Architecture from state-dict keys and shapes; heads from the model family or `heads`."""
    fields = _shapes(sd, where)
    return SiTConfig(**fields, heads=_heads(fields["depth"], fields["hidden"], heads, where))


def preset_name(config: SiTConfig) -> str | None:
    """Name of the preset with the same backbone (depth, hidden, heads, patch), if any."""
    for name, p in PRESETS.items():
        if (p.depth, p.hidden, p.heads, p.patch) == (config.depth, config.hidden, config.heads,
                                                     config.patch):
            return name
    return None


def _backbone(depth: int, hidden: int, patch: int) -> str:
    return f"depth {depth}, hidden {hidden}, patch {patch}"


def _check_keys(model: SiT, sd: dict[str, torch.Tensor], where: str) -> None:
    expected = model.state_dict()
    name = preset_name(model.config)
    arch = f"preset {name}" if name else f"config {model.config}"
    fix = "pass the matching --model-arg model=... or the right checkpoint"
    for what, keys in (("missing", [k for k in expected if k not in sd]),
                       ("unexpected", [k for k in sd if k not in expected])):
        if keys:
            raise WeightsError(f"SiT {where}: {what} key '{keys[0]}' ({len(keys)} {what}) "
                               f"for {arch}; {fix}")
    for k, v in expected.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise WeightsError(f"SiT {where}: '{k}' has shape {tuple(sd[k].shape)}, {arch} "
                               f"expects {tuple(v.shape)}; {fix}")


def _name(config: SiTConfig) -> str:
    name = preset_name(config)
    return f"the preset {name}" if name else "the given config"


def build_sit(sd: dict[str, torch.Tensor], where: str, config: SiTConfig | None = None,
              heads: int | None = None) -> SiT:
    """Our SiT with `sd` loaded strictly; the architecture is the preset `config` or inferred.

    With a config, the checkpoint's backbone must match it; the head variant (learn_sigma,
    projector dims) always follows the checkpoint, so one preset serves REPA (4 channels,
    projector) and SiT/DiT files (learned sigma, no projector).
    """
    if config is None:
        config = infer_config(sd, where, heads)
    elif not isinstance(config, SiTConfig):
        raise ConfigError(f"build_sit: config must be a SiTConfig, got {type(config)}")
    else:
        if heads is not None and heads != config.heads:
            raise ConfigError(f"--model-arg heads={heads} contradicts {_name(config)} "
                              f"({config.heads} heads); give only one of them")
        found = _shapes(sd, where)
        have = _backbone(found["depth"], found["hidden"], found["patch"])
        want = _backbone(config.depth, config.hidden, config.patch)
        if have != want:
            raise WeightsError(
                f"SiT {where} has {have}, not {_name(config)} ({want}); "
                "pass the matching --model-arg model=..., or for a backbone that is not a preset "
                "leave model= out and give --model-arg heads=N (heads are not stored in a "
                "checkpoint)")
        config = dataclasses.replace(config, learn_sigma=found["learn_sigma"],
                                     projector_dims=found["projector_dims"],
                                     projector_hidden=found["projector_hidden"])
    with torch.device("meta"):
        model = SiT(config)
    _check_keys(model, sd, where)
    model.load_state_dict(sd, strict=True, assign=True)
    model.pos_embed.requires_grad_(False)
    return model.eval()


def load_sit_checkpoint(path: str | Path, config: SiTConfig | None = None,
                        heads: int | None = None) -> SiT:
    """Build a SiT and load a checkpoint file strictly (see `build_sit`)."""
    return build_sit(read_checkpoint(path).state_dict, f"checkpoint {path}", config, heads)
