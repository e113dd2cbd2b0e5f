"""The `sit-repa` adapter: per-sample determinism, VAE decoding, uint8 rules, NFE accounting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

from diffbench.adapters.base import Request
from diffbench.adapters.sit import SiTAdapter, to_uint8
from diffbench.adapters.sit_model import SiT, SiTConfig
from diffbench.errors import ConfigError, WeightsError
from diffbench.registry import ADAPTERS
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


def test_every_draw_of_a_key_is_bit_identical_whatever_the_batch(pixel_ckpt, monkeypatch):
    adapter = ADAPTERS.get("sit-repa")(ckpt=pixel_ckpt, vae="none")
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
            assert np.abs(a.astype(int) - c.astype(int)).max() <= 1  # batched kernels may differ


def test_labels_and_seeds_come_from_the_key(pixel_ckpt):
    adapter = SiTAdapter(ckpt=pixel_ckpt, vae="none")
    reqs = requests(4, SDE)
    swapped = [Request(r.key, r.seed, {"class": (r.condition["class"] + 1) % 10}, r.sampler)
               for r in reqs]
    same, other = adapter.generate(reqs), adapter.generate(swapped)
    assert all(not np.array_equal(a, b) for a, b in zip(same, other, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(same, adapter.generate(reqs), strict=True))
    with pytest.raises(ConfigError, match="num_classes to 10"):
        adapter.generate([Request("x", 1, {"class": 10}, SDE)])


def test_nfe_accounting_250_steps_interval_0_07(pixel_ckpt):
    adapter = SiTAdapter(ckpt=pixel_ckpt, vae="none")
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
    adapter = SiTAdapter(ckpt=pixel_ckpt, vae="none")
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
def test_vae_decode_path(tmp_path, vae_dir, rule):
    ckpt = save_random_sit(tmp_path / "latent.safetensors", LATENT, seed=1)
    adapter = SiTAdapter(ckpt=ckpt, vae=str(vae_dir), uint8=rule)
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
    other = SiTAdapter(ckpt=ckpt, vae=str(vae_dir), latent_scale=0.5, uint8=rule)
    assert not np.array_equal(images, np.stack(other.generate(reqs)))


def test_missing_vae_and_checkpoint_name_the_fix(tmp_path, pixel_ckpt):
    with pytest.raises(WeightsError, match="vae=PATH"):
        SiTAdapter(ckpt=pixel_ckpt, vae=str(tmp_path / "no-vae"))
    with pytest.raises(WeightsError, match="ckpt=PATH"):
        SiTAdapter(ckpt=str(tmp_path / "none.pt"), vae="none")
