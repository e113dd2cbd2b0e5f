"""`idm-vton`: IDM-VTON's own try-on pipeline, imported at run time from the user's checkout.

IDM-VTON's code is CC BY-NC-SA 4.0, so none of it is shipped here: ``--model-arg repo=PATH``
points at a clone of github.com/yisol/IDM-VTON and this adapter imports from it exactly what the
authors' ``inference.py`` / ``inference_dc.py`` use:

- ``src.tryon_pipeline.StableDiffusionXLInpaintPipeline`` (TryonPipeline), built with
  ``from_pretrained(weights, unet=, vae=, feature_extractor=CLIPImageProcessor(), text_encoder=,
  text_encoder_2=, tokenizer=, tokenizer_2=, scheduler=, image_encoder=, torch_dtype=)`` and given
  ``pipe.unet_encoder`` afterwards;
- ``src.unet_hacked_tryon.UNet2DConditionModel`` (TryonNet, subfolder ``unet``) and
  ``src.unet_hacked_garmnet.UNet2DConditionModel`` (GarmentNet, subfolder ``unet_encoder``);
- from diffusers/transformers: ``DDPMScheduler``, ``AutoencoderKL``, ``CLIPTextModel``,
  ``CLIPTextModelWithProjection``, ``AutoTokenizer`` (``use_fast=False``),
  ``CLIPVisionModelWithProjection`` and ``CLIPImageProcessor``.

Per request it calls ``pipe.encode_prompt`` twice ("model is wearing a <caption>" with the
negative prompt and guidance; "a photo of <caption>" without) and then ``pipe(...)`` with the
published settings: 30 steps, guidance 2.0, 1024×768, strength 1.0, the person resized to the
output size in [0, 1], the binary agnostic mask resized, the DensePose image and the garment in
[-1, 1] at their own size (1024×768 in both datasets), the garment's CLIP pixels as IP-Adapter
input. Captions: VITON-HD tags (fallback "shirts"), DressCode ``dc_caption.txt`` (fallback the
category name), as IDM-VTON's loaders do.

Seeds: each request runs alone with ``generator=torch.Generator(pipe.device).manual_seed(seed)``
and, because TryonPipeline samples the DensePose VAE latent from the global RNG, inside
``torch.random.fork_rng`` with the global RNG seeded with the same seed. An image is therefore a
function of its own seed only, whatever the batch size, and the caller's RNG state is untouched.
(IDM-VTON's scripts seed one generator per batch: their images depend on the batch size.)
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from diffbench.adapters import diffusers_common as dc
from diffbench.adapters.base import Adapter, Request
from diffbench.data.vton_common import MODEL_INPUT_HELP
from diffbench.errors import ConfigError, DataError, WeightsError, one_line, shown
from diffbench.log import logger

DEFAULTS = {"steps": 30, "guidance_scale": 2.0, "height": 1024, "width": 768}
WEIGHTS = "yisol/IDM-VTON"
DRESSCODE_UNET = "yisol/IDM-VTON-DC"
NEGATIVE = "monochrome, lowres, bad anatomy, worst quality, low quality"
CAPTION_FALLBACK = {"vitonhd": "shirts"}  # DressCode falls back to the category name
MODULES = {"pipeline": ("src.tryon_pipeline", "StableDiffusionXLInpaintPipeline"),
           "tryon_unet": ("src.unet_hacked_tryon", "UNet2DConditionModel"),
           "garment_unet": ("src.unet_hacked_garmnet", "UNet2DConditionModel")}
_CLONE = "clone github.com/yisol/IDM-VTON (CC BY-NC-SA; not shipped with diffbench)"


def checkout_problem(repo: Any) -> str | None:
    """Why `repo` (the --model-arg value) is not an IDM-VTON checkout (None: it is one)."""
    if not repo:
        return f"idm-vton: pass --model-arg repo=PATH, a local clone of IDM-VTON; {_CLONE}"
    path = Path(str(repo)).expanduser()
    if not path.is_dir():
        return f"idm-vton: --model-arg repo={repo}: no such folder; {_CLONE}"
    for module, _ in MODULES.values():
        file = path / (module.replace(".", "/") + ".py")
        if not file.is_file():
            return (f"idm-vton: {path} is not an IDM-VTON checkout ({file.name} is missing "
                    f"under src/); {_CLONE} and pass --model-arg repo=PATH")
    return None


def import_repo(repo: Path) -> dict[str, Any]:
    """The three IDM-VTON classes, imported from `repo` (its ``src`` folder, not any other)."""
    problem = checkout_problem(repo)
    if problem:
        raise ConfigError(problem)
    # IDM-VTON's src/ has no __init__.py: bind the name 'src' to this folder explicitly, so
    # another 'src' package on sys.path (or imported before) cannot shadow it.
    for name in [n for n in sys.modules if n == "src" or n.startswith("src.")]:
        del sys.modules[name]
    pkg = types.ModuleType("src")
    pkg.__path__ = [str(repo / "src")]
    sys.modules["src"] = pkg
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))  # its modules import siblings such as ip_adapter
    out = {}
    for role, (module, attr) in MODULES.items():
        try:
            out[role] = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            missing = f"module '{exc.name}'" if isinstance(exc, ModuleNotFoundError) else \
                one_line(exc)
            raise ConfigError(f"idm-vton: importing {module} from {repo} failed: {missing} "
                              "is missing; install IDM-VTON's requirements (its environment.yaml "
                              "pins diffusers 0.25.0, transformers 4.36.2) in this "
                              "environment") from None
        except AttributeError:
            raise ConfigError(f"idm-vton: {module} in {repo} has no {attr}; is it IDM-VTON's "
                              "code?") from None
        except Exception as exc:  # noqa: BLE001 - third-party import code may raise anything
            raise ConfigError(f"idm-vton: importing {module} from {repo} failed "
                              f"({type(exc).__name__}: {one_line(exc)})") from None
    return out


def _device_problem(device: str) -> str | None:
    if str(device).startswith("cuda"):
        return None
    return ("idm-vton: IDM-VTON's TryonPipeline runs GarmentNet on 'cuda' in fp16 whatever the "
            "device (src/tryon_pipeline.py); run with --device cuda")


def git_commit(repo: Path) -> str | None:
    """The checked-out commit of `repo` (read from .git, no subprocess), or None."""
    git = repo / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).is_file():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        return None
    return None


def parse_sampler(sampler: dict[str, Any]) -> dict[str, Any]:
    """Steps, guidance scale and output size of a request, defaults filled in."""
    s = {**DEFAULTS, **sampler}
    try:
        out = {"steps": int(s["steps"]), "guidance_scale": float(s["guidance_scale"]),
               "height": int(s["height"]), "width": int(s["width"])}
    except (TypeError, ValueError):
        raise ConfigError(f"idm-vton: bad sampler arguments {shown(sampler)}; steps, height, width "
                          "are integers, guidance_scale a number") from None
    if out["steps"] < 1 or out["height"] % 8 or out["width"] % 8 or min(out["height"],
                                                                          out["width"]) < 8:
        raise ConfigError(f"idm-vton: steps must be >= 1 and height/width multiples of 8, got "
                          f"{out}")
    return out


def caption(condition: dict[str, Any]) -> str:
    """The garment words of IDM-VTON's prompts, with its loaders' fallbacks."""
    words = condition.get("caption")
    if words:
        return str(words)
    dataset = str(condition.get("dataset", "vitonhd"))
    return CAPTION_FALLBACK.get(dataset, str(condition.get("category", "shirts")))


def _to_tensor(img: Image.Image) -> torch.Tensor:
    from torchvision.transforms.functional import to_tensor

    return to_tensor(img)


def _open(path: str) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im


def model_inputs(cond: dict[str, Any], height: int, width: int, clip) -> dict[str, Any]:
    """The image arguments of TryonPipeline for one request, prepared as IDM-VTON's loaders do."""
    size = (width, height)
    # person: resized (PIL's default filter), ToTensor -> Normalize(0.5, 0.5) -> (x + 1) / 2
    person = _to_tensor(_open(cond["person"]).convert("RGB").resize(size))
    person = ((person - 0.5) / 0.5 + 1.0) / 2.0
    mask = _open(cond["mask"]).resize(size)
    if mask.mode not in ("L", "RGB"):
        mask = mask.convert("L")
    keep = 1 - _to_tensor(mask)[:1]  # white = the region to repaint
    pose = _open(cond["densepose"]).convert("RGB")
    if pose.size != size:  # its latent is concatenated to the 13-channel input: sizes must match
        pose = pose.resize(size)
    garment = _open(cond["garment"]).convert("RGB")
    return {"image": person[None], "mask_image": (1 - keep)[None],
            "pose_img": ((_to_tensor(pose) - 0.5) / 0.5)[None],
            "cloth": ((_to_tensor(garment) - 0.5) / 0.5)[None],
            "ip_adapter_image": clip(images=garment, return_tensors="pt").pixel_values}


class IDMVTONAdapter(Adapter):
    """IDM-VTON (TryonPipeline from your checkout, --model-arg repo=PATH) on try-on pairs."""

    conditions = frozenset({"tryon"})
    sampler_args = frozenset(DEFAULTS)

    @classmethod
    def missing(cls, args: dict[str, Any], device: str) -> list[str]:
        """The checkout, the CUDA device and (offline) the hub weights, without loading."""
        weights = str(args.get("weights", WEIGHTS))
        found = [checkout_problem(args.get("repo")), _device_problem(device),
                 dc.hub_missing(weights, "weights")]
        return [p for p in found if p]

    def __init__(self, repo: str | None = None, weights: str = WEIGHTS, unet: str = "auto",
                 jpeg_quality: int | None = None, device: str = "cpu", dtype: str = "fp16"):
        super().__init__(device=device, dtype=dtype)
        problem = checkout_problem(repo) or _device_problem(device)
        if problem:
            raise ConfigError(problem)
        self.repo = Path(str(repo)).expanduser().resolve()
        self.weights, self.unet_spec = str(weights), str(unet)
        self.jpeg_quality = None if jpeg_quality is None else int(jpeg_quality)
        self.torch_dtype = dc.torch_dtype(dtype)
        if dtype != "fp16":
            logger.warning("idm-vton: --dtype %s; IDM-VTON's published setting is fp16 "
                           "(--dtype fp16)", dtype)
        self.classes = import_repo(self.repo)
        dc.check_model_spec(self.weights, "weights")
        if self.unet_spec != "auto":
            dc.check_model_spec(self.unet_spec, "unet")
        if ":" in str(device) and torch.cuda.is_available():
            torch.cuda.set_device(torch.device(device))  # the pipeline says "cuda": this device
        self.parts = self._load_parts()
        self.pipe: Any = None
        self.loaded_unet: str | None = None
        self.used: dict[str, str] = {}

    # ---- loading ---------------------------------------------------------------------------

    def _kw(self) -> dict[str, Any]:
        return {dc._dtype_kwarg(): self.torch_dtype}

    def _load_parts(self) -> dict[str, Any]:
        """Everything but TryonNet, loaded as inference.py loads it (fp16, explicit classes)."""
        from diffusers import AutoencoderKL, DDPMScheduler
        from transformers import (
            AutoTokenizer,
            CLIPImageProcessor,
            CLIPTextModel,
            CLIPTextModelWithProjection,
            CLIPVisionModelWithProjection,
        )

        w, tdt, slow = self.weights, {"torch_dtype": self.torch_dtype}, {"use_fast": False}
        # each part from the subfolder of its own name, with inference.py's arguments
        loads = {"scheduler": (DDPMScheduler, {}), "vae": (AutoencoderKL, self._kw()),
                 "image_encoder": (CLIPVisionModelWithProjection, tdt),
                 "text_encoder": (CLIPTextModel, tdt),
                 "text_encoder_2": (CLIPTextModelWithProjection, tdt),
                 "tokenizer": (AutoTokenizer, slow), "tokenizer_2": (AutoTokenizer, slow)}
        with dc.quiet_loading():
            parts = {name: dc.from_model_arg(cls, w, "weights", subfolder=name, **kw)
                     for name, (cls, kw) in loads.items()}
            garment = dc.from_model_arg(self.classes["garment_unet"], w, "weights",
                                        subfolder="unet_encoder", **self._kw())
        garment.requires_grad_(False)
        self.garment_net = garment.to(dtype=self.torch_dtype).eval()  # to the device with the pipe
        parts["feature_extractor"] = CLIPImageProcessor()
        self.clip = CLIPImageProcessor()
        return parts

    def unet_for(self, condition: dict[str, Any]) -> str:
        """Which TryonNet a request uses: the DressCode model for DressCode under unet=auto."""
        if self.unet_spec != "auto":
            return self.unet_spec
        return DRESSCODE_UNET if condition.get("dataset") == "dresscode" else self.weights

    def _ensure(self, spec: str) -> None:
        """Build the pipeline, or swap its TryonNet, so that it runs `spec`'s UNet."""
        if spec == self.loaded_unet:
            return
        local = Path(spec).expanduser()
        sub = {} if (local / "config.json").is_file() else {"subfolder": "unet"}
        arg = "unet" if spec != self.weights else "weights"
        with dc.quiet_loading():
            try:
                unet = dc.from_model_arg(self.classes["tryon_unet"], spec, arg, **sub,
                                         **self._kw())
            except WeightsError as exc:
                if spec != DRESSCODE_UNET:
                    raise
                # IDM-VTON issue #55: the DressCode repository shipped without unet/config.json
                raise WeightsError(f"{exc} (DressCode tasks use {DRESSCODE_UNET} under "
                                   "unet=auto; if it lacks unet/config.json, copy yisol/IDM-VTON's "
                                   "beside its weights and pass --model-arg unet=FOLDER)") from None
            unet.requires_grad_(False)
            unet.eval()
            if self.pipe is None:
                pipe = dc.from_model_arg(self.classes["pipeline"], self.weights, "weights",
                                         unet=unet, **self.parts, **self._kw())
                self.pipe = pipe.to(self.device)
                # inference.py: pipe.unet_encoder = GarmentNet, on the pipeline's device
                self.pipe.unet_encoder = self.garment_net.to(self.pipe.device)
                if hasattr(self.pipe, "set_progress_bar_config"):
                    self.pipe.set_progress_bar_config(disable=True)
            else:
                self.pipe.unet = unet.to(self.pipe.device)
        self.loaded_unet = spec

    # ---- checks ----------------------------------------------------------------------------

    def check_keys(self, keys: Sequence[Request | str]) -> None:
        """Before any image: every request has its mask and DensePose, and its UNet loads."""
        reqs = [k for k in keys if isinstance(k, Request)]
        for field, hint in (("mask", None), ("densepose", "image-densepose")):
            bad = [r for r in reqs if not r.condition.get(field)
                   or not Path(str(r.condition[field])).is_file()]
            if bad:
                ds = bad[0].condition.get("dataset")
                hint = hint or ("dresscode-mask" if ds == "dresscode" else "agnostic-mask")
                raise DataError(f"idm-vton: {len(bad)} of {len(reqs)} try-on pairs have no "
                                f"{field} input (first: {bad[0].key}); "
                                f"{MODEL_INPUT_HELP[hint]}")
        if reqs and not any(r.condition.get("caption") for r in reqs):
            logger.warning("idm-vton: no garment captions (VITON-HD test/vitonhd_test_tagged.json "
                           "from IDM-VTON's repository, DressCode <category>/dc_caption.txt); "
                           "prompts fall back to %r", caption(reqs[0].condition))
        for spec in dict.fromkeys(self.unet_for(r.condition) for r in reqs):
            self._ensure(spec)

    # ---- generation ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _rng(self, seed: int) -> Iterator[None]:
        """Fork and seed the global RNG (TryonPipeline samples the DensePose latent from it)."""
        dev = torch.device(self.pipe.device)
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()] \
            if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def _one(self, req: Request) -> np.ndarray:
        s = parse_sampler(req.sampler)
        self._ensure(self.unet_for(req.condition))
        pipe, words = self.pipe, caption(req.condition)
        dev = torch.device(pipe.device)
        inputs = model_inputs(req.condition, s["height"], s["width"], self.clip)
        with torch.no_grad(), torch.autocast(dev.type, enabled=dev.type == "cuda"), \
                torch.inference_mode(), self._rng(int(req.seed)):
            embeds = pipe.encode_prompt([f"model is wearing a {words}"], num_images_per_prompt=1,
                                        do_classifier_free_guidance=True,
                                        negative_prompt=[NEGATIVE])
            cloth_embeds = pipe.encode_prompt([f"a photo of {words}"], num_images_per_prompt=1,
                                              do_classifier_free_guidance=False,
                                              negative_prompt=[NEGATIVE])[0]
            generator = torch.Generator(dev).manual_seed(int(req.seed))
            images = pipe(prompt_embeds=embeds[0], negative_prompt_embeds=embeds[1],
                          pooled_prompt_embeds=embeds[2], negative_pooled_prompt_embeds=embeds[3],
                          num_inference_steps=s["steps"], generator=generator, strength=1.0,
                          pose_img=inputs["pose_img"], text_embeds_cloth=cloth_embeds,
                          cloth=inputs["cloth"].to(dev), mask_image=inputs["mask_image"],
                          image=inputs["image"], height=s["height"], width=s["width"],
                          guidance_scale=s["guidance_scale"],
                          ip_adapter_image=inputs["ip_adapter_image"])[0]
        out = images[0].convert("RGB")
        if self.jpeg_quality is not None:  # inference.py saves <person>.jpg: PIL JPEG, quality 75
            buf = io.BytesIO()
            out.save(buf, format="JPEG", quality=self.jpeg_quality)
            out = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        self.used[str(req.condition.get("dataset"))] = self.loaded_unet or ""
        return np.asarray(out, dtype=np.uint8).copy()

    def generate(self, requests: Sequence[Request]) -> list[np.ndarray]:
        """One image per request; each runs alone so it depends on its own seed only."""
        return [self._one(r) for r in requests]

    def describe(self) -> dict[str, Any]:
        """Repository and commit, weights, TryonNet per dataset, defaults, seeding."""
        return {**super().describe(), "repo": str(self.repo), "repo_commit": git_commit(self.repo),
                "weights": self.weights, "unet": self.unet_spec, "unet_used": dict(self.used),
                "sampler_defaults": dict(DEFAULTS), "negative_prompt": NEGATIVE,
                "jpeg_quality": self.jpeg_quality,
                "seeding": "one pipeline call per request: torch.Generator(device) and the "
                           "forked global RNG seeded with the request's seed"}
