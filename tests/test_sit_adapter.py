"""The `sit-repa` adapter: per-sample determinism, VAE decoding, uint8 rules, NFE accounting."""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from diffusers import AutoencoderKL
from safetensors.torch import save_file

from diffbench.adapters.base import Request
from diffbench.adapters.sit import SiTAdapter, to_uint8
from diffbench.adapters.sit_model import SiT, SiTConfig
from diffbench.cli import main
from diffbench.errors import ConfigError, WeightsError
from diffbench.registry import ADAPTERS
from diffbench.run_record import RunFacts, _model_block
from diffbench.sampling import flow, seeding
from diffbench.sampling.seeding import make_generators, randn_per_sample, sample_seed

PIXEL = SiTConfig(depth=2, hidden=64, heads=1, patch=4, in_channels=1, input_size=16,
                  num_classes=10, projector_dims=())
LATENT = SiTConfig(depth=1, hidden=64, heads=1, patch=2, in_channels=4, input_size=4,
                   num_classes=10, projector_dims=())
SDE = {"mode": "sde", "steps": 12, "cfg_scale": 2.0, "guidance_interval": [0.0, 0.7]}


def save_random_sit(path, config: SiTConfig, seed: int = 0) -> str:
    """A SiT with non-zero random weights everywhere (adaLN-Zero would output 0), as safetensors."""
    torch.manual_seed(seed)
    model = SiT(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "pos_embed":
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


@pytest.fixture(scope="module")
def pixel_ckpt(tmp_path_factory):
    return save_random_sit(tmp_path_factory.mktemp("sit") / "pixel.safetensors", PIXEL)


def requests(n: int, sampler: dict, suite_seed: int = 0) -> list[Request]:
    """n balanced class requests keyed and seeded as diffbench's class tasks are."""
    keys = [f"c{i % 10:04d}_{i // 10:03d}" for i in range(n)]
    return [Request(key=k, seed=sample_seed(suite_seed, k), condition={"class": int(k[1:5])},
                    sampler=dict(sampler)) for k in keys]


class DrawSpy:
    """Calls the real `randn_per_sample` and keeps every draw (rows are in request order)."""

    def __init__(self):
        self.calls: list[torch.Tensor] = []

    def __call__(self, generators, shape, device="cpu", dtype=torch.float32):
        out = randn_per_sample(generators, shape, device, dtype)
        self.calls.append(out.clone())
        return out


def _draws_by_key(adapter, reqs, batch, monkeypatch) -> tuple[dict, list[np.ndarray]]:
    """Per key: [initial noise, SDE draw 1, ..., SDE draw K]; and the images."""
    draws: dict[str, list[torch.Tensor]] = {r.key: [] for r in reqs}
    images = []
    for i in range(0, len(reqs), batch):
        chunk = reqs[i:i + batch]
        spy = DrawSpy()
        monkeypatch.setattr(seeding, "randn_per_sample", spy)
        monkeypatch.setattr(flow, "randn_per_sample", spy)
        images += adapter.generate(chunk)
        for call in spy.calls:
            assert call.shape[0] == len(chunk)
            for row, r in enumerate(chunk):
                draws[r.key].append(call[row])
    return draws, images


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_every_draw_of_a_key_is_bit_identical_whatever_the_batch(pixel_ckpt, monkeypatch):
    adapter = ADAPTERS.get("sit-repa")(ckpt=pixel_ckpt, heads=1, vae="none")
    reqs = requests(7, SDE)
    runs = {b: _draws_by_key(adapter, reqs, b, monkeypatch) for b in (1, 3, 7)}
    ref_draws, ref_images = runs[7]
    for key, seq in ref_draws.items():
        assert len(seq) == 1 + (SDE["steps"] - 1)  # initial noise + one draw per SDE step
        for b in (1, 3):
            assert all(torch.equal(a, c) for a, c in zip(seq, runs[b][0][key], strict=True))
    assert len({bytes(s[0].numpy().tobytes()) for s in ref_draws.values()}) == len(reqs)
    for b in (1, 3):
        for a, c in zip(ref_images, runs[b][1], strict=True):
            # batched float32 kernels may round differently: x0 moves by ~1e-6 (float32
            # rounding, cf. test_sampling's e32), 127.5·x0 by far less than one level, so a
            # pixel can only cross one rounding boundary
            assert np.abs(a.astype(int) - c.astype(int)).max() <= 1


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_labels_and_seeds_come_from_the_key(pixel_ckpt):
    adapter = SiTAdapter(ckpt=pixel_ckpt, heads=1, vae="none")
    reqs = requests(4, SDE)
    swapped = [Request(r.key, r.seed, {"class": (r.condition["class"] + 1) % 10}, r.sampler)
               for r in reqs]
    same, other = adapter.generate(reqs), adapter.generate(swapped)
    assert all(not np.array_equal(a, b) for a, b in zip(same, other, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(same, adapter.generate(reqs), strict=True))
    with pytest.raises(ConfigError, match="num_classes to 10"):
        adapter.generate([Request("x", 1, {"class": 10}, SDE)])


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_nfe_accounting_250_steps_interval_0_07(pixel_ckpt):
    adapter = SiTAdapter(ckpt=pixel_ckpt, heads=1, vae="none")
    sampler = {"mode": "sde", "steps": 250, "cfg_scale": 1.8, "guidance_interval": [0.0, 0.7]}
    adapter.generate(requests(2, sampler))
    st = adapter.last_stats
    assert (st.guided_nfe, st.unguided_nfe) == (172, 78)
    assert st.model_rows == 2 * (2 * 172 + 78)
    assert flow.count_nfe(adapter.sampler_config(sampler)) == (172, 78)
    # what diffbench run records per image in results' generation.model_evaluations
    assert adapter.sampler_stats(sampler) == {"guided_nfe": 172, "unguided_nfe": 78, "nfe": 250,
                                              "model_rows_per_image": 422}


def test_null_class_is_the_checkpoints_last_row(pixel_ckpt):
    adapter = SiTAdapter(ckpt=pixel_ckpt, heads=1, vae="none")
    assert adapter.sampler_config(SDE).null_class == 10
    assert adapter.sampler_config({**SDE, "null_class": 3}).null_class == 3


@pytest.mark.parametrize("rule,formula", [
    ("round", lambda x: np.floor(np.clip(127.5 * x + 128.0, 0, 255))),
    ("truncate", lambda x: np.floor(np.clip(255.0 * (x + 1.0) / 2.0, 0, 255))),
])
def test_uint8_rules_follow_dit_and_repa(rule, formula):
    x = torch.linspace(-1.2, 1.2, 4 * 3 * 5 * 7, dtype=torch.float64).reshape(4, 3, 5, 7)
    got = to_uint8(x, rule)
    want = formula(x.float().numpy()).astype(np.uint8).transpose(0, 2, 3, 1)
    assert got.dtype == np.uint8 and np.array_equal(got, want)
    grey = to_uint8(x[:, :1], rule)
    assert np.array_equal(grey[..., 0], grey[..., 2])  # one channel replicated to RGB


def test_round_minus_truncate_is_zero_or_one_level():
    x = torch.rand(10_000, dtype=torch.float64) * 2 - 1
    d = to_uint8(x.view(1, 1, 100, 100), "round").astype(int) - \
        to_uint8(x.view(1, 1, 100, 100), "truncate").astype(int)
    assert set(np.unique(d)) == {0, 1}


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    """A tiny random AutoencoderKL (4 latent channels, ×2 upsampling) saved with save_pretrained."""
    torch.manual_seed(3)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
                        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4)
    root = tmp_path_factory.mktemp("vae")
    vae.save_pretrained(root)
    return root


@pytest.mark.parametrize("rule", ["round", "truncate"])
@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_vae_decode_path(tmp_path, vae_dir, rule):
    ckpt = save_random_sit(tmp_path / "latent.safetensors", LATENT, seed=1)
    adapter = SiTAdapter(ckpt=ckpt, heads=1, vae=str(vae_dir), uint8=rule)
    sampler = {"mode": "ode", "steps": 6, "cfg_scale": 1.5}
    reqs = requests(3, sampler)
    images = np.stack(adapter.generate(reqs))
    assert images.shape == (3, 8, 8, 3)
    gens = make_generators([r.seed for r in reqs])
    noise = randn_per_sample(gens, (4, 4, 4))
    labels = torch.tensor([r.condition["class"] for r in reqs])
    with torch.no_grad():
        x0, _ = flow.sample(adapter._velocity, noise, labels, adapter.sampler_config(sampler), gens)
        ref_vae = AutoencoderKL.from_pretrained(str(vae_dir)).eval()
        decoded = ref_vae.decode(x0.float() / 0.18215).sample.double()
    assert np.array_equal(images, to_uint8(decoded, rule))
    desc = adapter.describe()
    assert desc["latent_scale"] == 0.18215 and desc["uint8"] == rule
    assert desc["vae"] == str(vae_dir)
    other = SiTAdapter(ckpt=ckpt, heads=1, vae=str(vae_dir), latent_scale=0.5, uint8=rule)
    assert not np.array_equal(images, np.stack(other.generate(reqs)))


def test_missing_vae_and_checkpoint_name_the_fix(tmp_path, pixel_ckpt):
    with pytest.raises(WeightsError, match="vae=PATH"):
        SiTAdapter(ckpt=pixel_ckpt, heads=1, vae=str(tmp_path / "no-vae"))
    with pytest.raises(WeightsError, match="ckpt=PATH"):
        SiTAdapter(ckpt=str(tmp_path / "none.pt"), vae="none")


# ---------------------------------------------------------------- REPA's training checkpoints

REPA_ARGS = argparse.Namespace(  # the kinds of values REPA's train.py parse_args() holds
    output_dir="exps", exp_name="tiny-repa", logging_dir="logs", report_to="wandb",
    sampling_steps=10000, resume_step=0, model="SiT-B/2", num_classes=10, encoder_depth=1,
    fused_attn=True, qk_norm=False, data_dir="../data/imagenet256", resolution=256,
    batch_size=256, allow_tf32=False, mixed_precision="fp16", epochs=1400,
    max_train_steps=400000, checkpointing_steps=50000, gradient_accumulation_steps=1,
    learning_rate=1e-4, adam_beta1=0.9, adam_beta2=0.999, adam_weight_decay=0.0,
    adam_epsilon=1e-08, max_grad_norm=1.0, seed=0, num_workers=4, path_type="linear",
    prediction="v", cfg_prob=0.1, enc_type="dinov2-vit-b", proj_coeff=0.5, weighting="uniform",
    legacy=False)


def save_repa_train_checkpoint(path: Path, config: SiTConfig, args: object = REPA_ARGS,
                               steps: int = 50_000) -> tuple[dict, dict]:
    """A file written as REPA's train.py writes one: its dict, torch.save, a real AdamW state.

    Returns the (model, ema) state dicts; they differ (one optimizer step, then REPA's EMA
    update), so a test can tell which one was loaded.
    """
    torch.manual_seed(0)
    model = SiT(config)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "pos_embed":
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0)
    model.train()
    x = torch.randn(2, config.in_channels, config.input_size, config.input_size, generator=g)
    loss = model(x, torch.rand(2, generator=g), torch.tensor([1, 2])).square().mean()
    loss.backward()
    opt.step()
    with torch.no_grad():  # REPA's update_ema(ema, model), decay 0.9999 -> 0.5 to be visible
        for (_, e), (_, p) in zip(ema.named_parameters(), model.named_parameters(), strict=True):
            e.mul_(0.5).add_(p.data, alpha=0.5)
    checkpoint = {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                  "args": args, "steps": steps}
    torch.save(checkpoint, path)
    return model.state_dict(), ema.state_dict()


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_repa_training_checkpoint_loads_its_ema_and_records_the_step(tmp_path):
    path = tmp_path / "0050000.pt"
    model_sd, ema_sd = save_repa_train_checkpoint(path, PIXEL)
    assert not torch.equal(model_sd["blocks.0.attn.qkv.weight"], ema_sd["blocks.0.attn.qkv.weight"])
    torch.save(ema_sd, tmp_path / "ema.pt")
    torch.save(model_sd, tmp_path / "model.pt")
    adapter = SiTAdapter(ckpt=str(path), heads=1, vae="none")
    reqs = requests(3, SDE)
    images = adapter.generate(reqs)
    ema_images = SiTAdapter(ckpt=str(tmp_path / "ema.pt"), heads=1, vae="none").generate(reqs)
    model_images = SiTAdapter(ckpt=str(tmp_path / "model.pt"), heads=1,
                              vae="none").generate(reqs)
    assert all(np.array_equal(a, b) for a, b in zip(images, ema_images, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(images, model_images, strict=True))
    desc = adapter.describe()
    assert desc["checkpoint"] == {"weights": "ema", "training_steps": 50_000,
                                  "training_args": vars(REPA_ARGS)}
    assert desc["architecture"]["heads"] == 1 and desc["architecture"]["depth"] == 2
    # what `diffbench run` writes into the results record's model block
    facts = RunFacts("sit-repa", {"ckpt": str(path), "heads": 1}, "cpu", "fp32", 1)
    block = _model_block(facts, adapter)
    assert block["args"]["adapter"]["checkpoint"]["training_steps"] == 50_000
    assert block["args"]["adapter"]["checkpoint"]["training_args"]["enc_type"] == "dinov2-vit-b"
    assert torch.serialization.get_safe_globals().count(argparse.Namespace) == 0  # scoped


class _Shell:
    """Unpickling it would run a shell command (what weights_only=True exists to refuse)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _TrainerState:
    """A custom class in the args' place (as other training scripts store configs)."""

    def __init__(self):
        self.lr = 1e-4


@pytest.mark.parametrize("kind", ["os.system", "custom class"])
def test_unsafe_pickle_in_a_training_checkpoint_is_refused(tmp_path, kind):
    marker = tmp_path / "ran"
    path = tmp_path / "0050000.pt"
    args = _Shell(marker) if kind == "os.system" else _TrainerState()
    save_repa_train_checkpoint(path, PIXEL, args=args)
    name = "posix.system" if kind == "os.system" else "_TrainerState"
    with pytest.raises(WeightsError, match=f"holds a Python object '[\\w.]*{name}'") as err:
        SiTAdapter(ckpt=str(path), heads=1, vae="none")
    assert "\n" not in str(err.value) and not marker.exists()
    suite = tmp_path / "sit.yaml"
    suite.write_text(SIT_SUITE)
    res = CliRunner().invoke(main, ["-q", "generate", str(suite), "--model", "sit-repa",
                                    "--model-arg", f"ckpt={path}", "--model-arg", "heads=1",
                                    "--model-arg", "vae=none", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffbench: error: SiT checkpoint"), lines
    assert not marker.exists() and not (tmp_path / "out" / "samples").exists()


SIT_SUITE = """\
name: sit
version: 1
tasks:
  cls:
    kind: generate
    condition: class
    generation:
      images_per_condition: 1
      seed: 3
      sampler: {num_classes: 10, mode: sde, steps: 4}
    protocol: adm
    metrics: {fid: {}}
"""


def test_heads_are_asked_for_a_backbone_that_is_not_a_preset(pixel_ckpt):
    with pytest.raises(ConfigError, match=r"not a SiT/DiT model.*--model-arg heads=N"):
        SiTAdapter(ckpt=pixel_ckpt, vae="none")
    with pytest.raises(WeightsError, match=r"not the preset SiT-B/2 .*heads=N"):
        SiTAdapter(ckpt=pixel_ckpt, model="SiT-B/2", vae="none")
    with pytest.raises(ConfigError, match="model=SiT-Q/2: expected one of"):
        SiTAdapter(ckpt=pixel_ckpt, model="SiT-Q/2", vae="none")
