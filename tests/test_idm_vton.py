"""The idm-vton adapter against a fake IDM-VTON checkout with the same import surface.

The fake package (written into tmp_path) has IDM-VTON's module paths and the class and call
signatures the adapter uses: ``src.tryon_pipeline.StableDiffusionXLInpaintPipeline`` and the two
hacked ``UNet2DConditionModel`` classes. It records every call and returns images made from the
generator it is given plus one draw from the global RNG (as TryonPipeline samples the DensePose
latent). The other components are tiny random diffusers/transformers models loaded for real.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torchvision.transforms.functional import to_tensor

from diffbench.adapters.base import Request
from diffbench.adapters.idm_vton import NEGATIVE, IDMVTONAdapter
from diffbench.cli import main
from diffbench.data.dresscode import DressCode
from diffbench.data.vitonhd import VitonHD
from diffbench.errors import ConfigError, DataError, WeightsError
from diffbench.requests import task_requests
from diffbench.suite import default_suites_dir, load_suite
from tests._vton import write_dresscode, write_vitonhd
from tests.tiny_diffusers import make_sdxl

SMALL = {"height": 64, "width": 48}

UNET = '''
import json
from pathlib import Path

import torch


class UNet2DConditionModel(torch.nn.Module):
    """Fake {role}: records from_pretrained calls, holds its config."""

    loads = []

    def __init__(self, folder, config):
        super().__init__()
        self.folder, self.config = folder, config
        self.weight = torch.nn.Parameter(torch.zeros(1))

    @classmethod
    def from_pretrained(cls, path, subfolder=None, **kwargs):
        folder = Path(path) / (subfolder or "")
        if not (folder / "config.json").is_file():
            raise OSError(f"{{folder}} has no config.json")
        cls.loads.append({{"path": str(path), "subfolder": subfolder,
                          **{{k: str(v) for k, v in kwargs.items()}}}})
        return cls(str(folder), json.loads((folder / "config.json").read_text()))
'''

PIPELINE = '''
from pathlib import Path

import torch
from PIL import Image


class StableDiffusionXLInpaintPipeline:
    """Fake TryonPipeline: records calls; images from the generator and the global RNG."""

    instances = []

    def __init__(self, path, components):
        self.path, self.components, self.calls, self.prompts = path, components, [], []
        self.moved_to, self._device = None, torch.device("cpu")

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        if not (Path(path) / "model_index.json").is_file():
            raise OSError(f"{path} has no model_index.json")
        pipe = cls(path, kwargs)
        cls.instances.append(pipe)
        return pipe

    def to(self, device):
        self.moved_to = str(device)
        if torch.cuda.is_available():
            self._device = torch.device(device)
        return self

    @property
    def device(self):
        return self._device

    def encode_prompt(self, prompt, num_images_per_prompt=1, do_classifier_free_guidance=True,
                      negative_prompt=None):
        self.prompts.append((list(prompt), do_classifier_free_guidance, list(negative_prompt)))
        ids = self.components["tokenizer"](prompt, padding="max_length", max_length=77,
                                           truncation=True, return_tensors="pt").input_ids
        emb = ids[:, :, None].float().repeat(1, 1, 2) / 1000
        return emb, torch.zeros_like(emb), emb.mean(1), torch.zeros(len(prompt), 2)

    def __call__(self, **kw):
        self.calls.append(kw)
        gen = kw["generator"]
        noise = torch.rand((kw["height"], kw["width"], 3), generator=gen, device=gen.device)
        pose_latent_noise = torch.randn((), device=self.device)
        img = (0.5 * noise.cpu() + 0.3 * kw["image"][0].permute(1, 2, 0)
               + 0.1 * kw["mask_image"][0, 0][..., None] + 0.05 * pose_latent_noise.cpu())
        arr = (img.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        return ([Image.fromarray(arr)],)
'''


def write_repo(root: Path, pipeline: str = PIPELINE) -> Path:
    """A fake IDM-VTON checkout: src/ without __init__.py, like the real one."""
    src = root / "src"
    src.mkdir(parents=True)
    (src / "tryon_pipeline.py").write_text(pipeline)
    (src / "unet_hacked_tryon.py").write_text(UNET.format(role="TryonNet"))
    (src / "unet_hacked_garmnet.py").write_text(UNET.format(role="GarmentNet"))
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """A tiny IDM-VTON weights folder (SDXL parts + image encoder) and a DressCode UNet folder."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    root = tmp_path_factory.mktemp("idm-weights")
    main_dir = make_sdxl(root / "IDM-VTON")
    torch.manual_seed(0)
    CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        image_size=224, patch_size=32, projection_dim=32)).save_pretrained(main_dir / "image_encoder")
    (main_dir / "unet_encoder").mkdir()
    (main_dir / "unet_encoder" / "config.json").write_text(json.dumps({"net": "garment"}))
    (root / "dc" / "unet").mkdir(parents=True)
    (root / "dc" / "unet" / "config.json").write_text(json.dumps({"net": "tryon-dc"}))
    return {"main": main_dir, "dc": root / "dc"}


@pytest.fixture(autouse=True)
def _clean_imports():
    """Each test imports its own fake 'src'; leave no trace for other test modules."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [n for n in sys.modules if n == "src" or n.startswith("src.")]:
        del sys.modules[name]


def adapter(tmp_path: Path, weights, **kw) -> IDMVTONAdapter:
    repo = kw.pop("repo", None) or write_repo(tmp_path / "IDM-VTON")
    return IDMVTONAdapter(repo=str(repo), weights=str(weights["main"]), device="cuda",
                          dtype="fp16", **kw)


def vitonhd_requests(tmp_path: Path, pairing: str = "paired", sampler=None, **kw) -> list[Request]:
    root = write_vitonhd(tmp_path / "vitonhd", **kw)
    task = load_suite(default_suites_dir() / "vitonhd.yaml").suite.tasks[pairing]
    reqs = task_requests(task, items=VitonHD(root, pairing=pairing).items())
    return [Request(r.key, r.seed, r.condition, dict(sampler or {}), r.item) for r in reqs]


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_loading_and_call_arguments(tmp_path, weights):
    from diffusers import AutoencoderKL, DDPMScheduler
    from transformers import (
        CLIPImageProcessor,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
        CLIPVisionModelWithProjection,
    )

    ad = adapter(tmp_path, weights)
    reqs = vitonhd_requests(tmp_path)
    ad.check_keys(reqs)
    images = ad.generate(reqs[:2] + reqs[-1:])
    pipe = ad.pipe
    kinds = {"vae": AutoencoderKL, "scheduler": DDPMScheduler, "text_encoder": CLIPTextModel,
             "text_encoder_2": CLIPTextModelWithProjection, "tokenizer": CLIPTokenizer,
             "tokenizer_2": CLIPTokenizer, "image_encoder": CLIPVisionModelWithProjection,
             "feature_extractor": CLIPImageProcessor}
    for name, cls in kinds.items():
        assert type(pipe.components[name]) is cls, name  # slow tokenizers: use_fast=False
    assert pipe.components["unet"].folder == str(weights["main"] / "unet")
    assert pipe.components["dtype"] == torch.float16 and pipe.moved_to == "cuda"
    assert pipe.unet_encoder.folder == str(weights["main"] / "unet_encoder")
    assert pipe.unet_encoder.weight.dtype == torch.float16
    assert pipe.path == str(weights["main"])
    assert [im.shape for im in images] == [(1024, 768, 3)] * 3 and images[0].dtype == np.uint8
    clip = CLIPImageProcessor()
    for req, call in zip(reqs[:2] + reqs[-1:], pipe.calls, strict=True):
        assert (call["num_inference_steps"], call["guidance_scale"], call["strength"],
                call["height"], call["width"]) == (30, 2.0, 1.0, 1024, 768)
        assert call["generator"].initial_seed() == req.seed
        c = req.condition
        person = to_tensor(Image.open(c["person"]).convert("RGB").resize((768, 1024)))
        assert torch.allclose(call["image"][0], person, atol=1e-6)
        mask = to_tensor(Image.open(c["mask"]).resize((768, 1024)))[:1]
        assert torch.allclose(call["mask_image"][0], mask, atol=1e-6)
        assert call["mask_image"].min() >= 0 and call["mask_image"].max() <= 1  # binarised later
        pose = to_tensor(Image.open(c["densepose"]).convert("RGB").resize((768, 1024))) * 2 - 1
        assert torch.allclose(call["pose_img"][0], pose, atol=1e-6)
        garment = Image.open(c["garment"]).convert("RGB")
        assert call["cloth"].shape[-2:] == (64, 48)  # the garment keeps its own size
        assert torch.allclose(call["cloth"][0], to_tensor(garment) * 2 - 1, atol=1e-6)
        assert torch.equal(call["ip_adapter_image"],
                           clip(images=garment, return_tensors="pt").pixel_values)
    tagged, untagged = "short sleeve t-shirts ", "shirts"
    assert pipe.prompts[0] == ([f"model is wearing a {tagged}"], True, [NEGATIVE])
    assert pipe.prompts[1] == ([f"a photo of {tagged}"], False, [NEGATIVE])
    assert pipe.prompts[-2][0] == [f"model is wearing a {untagged}"]  # not in the tags file
    info = ad.describe()
    assert info["unet_used"] == {"vitonhd": str(weights["main"])} and info["repo_commit"] is None


def test_images_depend_on_their_seed_only(tmp_path, weights):
    ad = adapter(tmp_path, weights)
    reqs = vitonhd_requests(tmp_path, sampler=SMALL)
    state = torch.get_rng_state()
    whole = ad.generate(reqs)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    parts = ad.generate(reqs[:1]) + ad.generate(reqs[1:3]) + ad.generate(reqs[3:])
    assert all(np.array_equal(a, b) for a, b in zip(whole, parts, strict=True))
    assert whole[0].shape == (64, 48, 3)
    other = Request(reqs[0].key, reqs[0].seed + 1, reqs[0].condition, dict(SMALL))
    assert not np.array_equal(ad.generate([other])[0], whole[0])
    jpeg = adapter(tmp_path / "j", weights, jpeg_quality=75).generate(reqs[:1])[0]
    assert jpeg.shape == whole[0].shape and not np.array_equal(jpeg, whole[0])


def test_dresscode_unet_and_captions(tmp_path, weights):
    root = write_dresscode(tmp_path / "dc")
    task = load_suite(default_suites_dir() / "dresscode.yaml").suite.tasks["paired-lower_body"]
    reqs = task_requests(task, items=DressCode(root, category="lower_body").items())
    reqs = [Request(r.key, r.seed, r.condition, dict(SMALL)) for r in reqs]
    with pytest.raises(WeightsError, match="yisol/IDM-VTON-DC.*unet/config.json") as exc:
        adapter(tmp_path, weights).check_keys(reqs)  # unet=auto, offline, not cached
    assert "\n" not in str(exc.value)
    ad = adapter(tmp_path / "b", weights, unet=str(weights["dc"]))
    ad.generate(reqs[:1])
    assert ad.pipe.components["unet"].config == {"net": "tryon-dc"}
    assert ad.pipe.prompts[0][0] == ["model is wearing a a lower_body garment"]
    (root / "lower_body" / "dc_caption.txt").unlink()
    reqs = task_requests(task, items=DressCode(root, category="lower_body").items())
    ad.generate([Request(reqs[0].key, reqs[0].seed, reqs[0].condition, dict(SMALL))])
    assert ad.pipe.prompts[-2][0] == ["model is wearing a lower_body"]  # the category name


def test_errors_are_one_line(tmp_path, weights):
    cases = [
        (dict(repo=""), ConfigError, "pass --model-arg repo=PATH"),
        (dict(repo=str(tmp_path / "nowhere")), ConfigError, "no such folder"),
        (dict(repo=str((tmp_path / "empty").mkdir() or tmp_path / "empty")), ConfigError,
         "not an IDM-VTON checkout"),
        (dict(repo=write_repo(tmp_path / "broken", "import idm_missing_dependency\n")),
         ConfigError, "module 'idm_missing_dependency' is missing"),
        (dict(weights=str(tmp_path / "no-weights")), WeightsError, "no such folder"),
        (dict(device="cpu"), ConfigError, "--device cuda"),
    ]
    for i, (kw, err, text) in enumerate(cases):
        args = {"repo": str(write_repo(tmp_path / f"r{i}")), "weights": str(weights["main"]),
                "device": "cuda", **kw}
        with pytest.raises(err, match=text) as exc:
            IDMVTONAdapter(**args)
        assert "\n" not in str(exc.value), kw
    ad = adapter(tmp_path / "m", weights)
    with pytest.raises(DataError, match="5 of 5 try-on pairs have no mask.*agnostic-mask"):
        ad.check_keys(vitonhd_requests(tmp_path / "m", masks=False))


def test_generate_command_batch_sizes_give_identical_files(tmp_path, weights, monkeypatch):
    # IDM-VTON's pipeline insists on --device cuda; the fake package runs it on the CPU, so the
    # up-front GPU check (preflight's, tested in test_preflight.py) is bypassed here.
    monkeypatch.setattr("diffbench.preflight.check_device", lambda device: device)
    root = write_vitonhd(tmp_path / "vitonhd")
    repo = write_repo(tmp_path / "IDM-VTON")
    sets = ["--set", "tasks.paired.generation.sampler.height=64",
            "--set", "tasks.paired.generation.sampler.width=48"]
    files = []
    for batch in (1, 3):
        out = tmp_path / f"run{batch}"
        res = CliRunner().invoke(main, [
            "generate", str(default_suites_dir() / "vitonhd.yaml"), "--model", "idm-vton",
            "--model-arg", f"repo={repo}", "--model-arg", f"weights={weights['main']}",
            "--device", "cuda", "--dtype", "fp16", "--data", f"vitonhd={root}", "--task", "paired",
            "--batch-size", str(batch), "--out", str(out), *sets], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        files.append({p.name: p.read_bytes() for p in (out / "samples" / "paired").glob("*.png")})
    assert len(files[0]) == 5 and files[0] == files[1]
    res = CliRunner().invoke(main, [
        "generate", str(default_suites_dir() / "vitonhd.yaml"), "--model", "idm-vton",
        "--model-arg", f"repo={tmp_path}", "--device", "cuda", "--data", f"vitonhd={root}"])
    assert res.exit_code == 2 and "not an IDM-VTON checkout" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
