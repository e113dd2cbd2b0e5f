"""The `dit` adapter on a tiny random DiT pipeline folder (DiTTransformer2DModel + AutoencoderKL)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    DiTPipeline,
    DiTTransformer2DModel,
)

from diffbench.adapters.base import Request
from diffbench.adapters.dit import DiTAdapter, parse_sampler
from diffbench.errors import ConfigError, WeightsError
from diffbench.registry import ADAPTERS

N_CLASSES = 1000  # diffusers' DiTPipeline hard-codes the null class 1000


def _transformer(learn_sigma: bool = True) -> DiTTransformer2DModel:
    torch.manual_seed(0)
    net = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                out_channels=8 if learn_sigma else 4, num_layers=2,
                                sample_size=8, patch_size=2, num_embeds_ada_norm=N_CLASSES)
    with torch.no_grad():  # DiT's zero-initialised adaLN would make every output 0
        for p in net.parameters():
            p.normal_(0.0, 0.3)
    return net.eval()


def _vae() -> AutoencoderKL:
    torch.manual_seed(1)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                         up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
                         block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                         sample_size=16).eval()


@pytest.fixture(scope="module")
def dit_dir(tmp_path_factory):
    """A DiTPipeline folder (transformer/, vae/, scheduler/ = DDIM) saved with save_pretrained."""
    root = tmp_path_factory.mktemp("dit")
    sched = DDIMScheduler(beta_schedule="linear", clip_sample=False, timestep_spacing="linspace",
                          set_alpha_to_one=True)
    DiTPipeline(transformer=_transformer(), vae=_vae(), scheduler=sched).save_pretrained(root)
    return root


def _reqs(n: int, sampler: dict, seed0: int = 100) -> list[Request]:
    return [Request(key=f"k{i}", seed=seed0 + i, condition={"class": i % 10},
                    sampler=sampler) for i in range(n)]


def test_registered_and_loads_local_folder(dit_dir):
    adapter = ADAPTERS.get("dit")(model=str(dit_dir))
    assert adapter.learn_sigma and adapter.num_classes == N_CLASSES
    assert adapter.latent_scale == pytest.approx(0.18215)
    images = adapter.generate(_reqs(3, {"steps": 4, "cfg_scale": 1.5}))
    assert len(images) == 3 and all(im.shape == (16, 16, 3) and im.dtype == np.uint8
                                    for im in images)
    assert adapter.last_stats == {"guided_nfe": 4, "unguided_nfe": 0, "model_rows": 24}
    assert adapter.describe()["uint8"] == "round"


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_images_do_not_depend_on_batch(dit_dir):
    adapter = DiTAdapter(model=str(dit_dir))
    sampler = {"steps": 5, "cfg_scale": 2.0}  # ddpm: a fresh noise draw at every step
    reqs = _reqs(5, sampler)
    together = adapter.generate(reqs)
    alone = [adapter.generate([r])[0] for r in reqs]
    shuffled = adapter.generate(reqs[::-1])[::-1]
    for a, b, c in zip(together, alone, shuffled, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
        assert np.array_equal(a, c)
    assert not np.array_equal(together[0], together[1])


def test_matches_diffusers_pipeline_with_its_conventions(dit_dir):
    """With the folder's DDIM scheduler and all 4 channels guided, we are DiTPipeline."""
    adapter = DiTAdapter(model=str(dit_dir))
    reqs = _reqs(3, {"steps": 6, "cfg_scale": 4.0, "scheduler": "folder", "guide_channels": 4})
    ours = np.stack(adapter.generate(reqs)).astype(int)
    pipe = DiTPipeline.from_pretrained(str(dit_dir))
    gens = [torch.Generator().manual_seed(r.seed) for r in reqs]
    out = pipe([r.condition["class"] for r in reqs], guidance_scale=4.0, generator=gens,
               num_inference_steps=6, output_type="pt").images
    ref = torch.clamp(255 * out + 0.5, 0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.abs(ours - ref.astype(int)).max() <= 1


def test_cfg_guides_first_three_channels_like_dit(dit_dir):
    adapter = DiTAdapter(model=str(dit_dir))
    adapter.last_stats = {"guided_nfe": 0, "unguided_nfe": 0, "model_rows": 0}
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    y, t = torch.tensor([3, 7]), torch.tensor(500)
    got = adapter._eps(x, t, y, parse_sampler({"cfg_scale": 3.0}))
    with torch.no_grad():
        out = adapter.transformer(torch.cat([x, x]), timestep=t.expand(4),
                                  class_labels=torch.tensor([3, 7, 1000, 1000])).sample
    cond, uncond = out.chunk(2)
    assert torch.allclose(got[:, :3], uncond[:, :3] + 3.0 * (cond[:, :3] - uncond[:, :3]),
                          atol=1e-5)
    assert torch.equal(got[:, 3:], cond[:, 3:])  # eps channel 3 and the learned sigma: conditional
    assert adapter.last_stats["model_rows"] == 4


def test_ddpm_is_dits_respaced_learned_variance_sampler(dit_dir):
    """Timesteps = guided-diffusion space_timesteps(1000, "250"); one step = p_sample's formulas."""
    sched = DiTAdapter(model=str(dit_dir)).scheduler("ddpm")
    sched.set_timesteps(250)
    frac, cur, taken = 999 / 249, 0.0, []
    for _ in range(250):
        taken.append(round(cur))
        cur += frac
    assert sched.timesteps.tolist() == taken[::-1]
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    acp = np.cumprod(1 - betas)[taken]
    i = 100  # a step in the respaced chain: t = taken[i], previous = taken[i - 1]
    t, acp_t, acp_prev = taken[i], acp[i], acp[i - 1]
    beta = 1 - acp_t / acp_prev
    gen = torch.Generator().manual_seed(0)
    x, eps, v = (torch.randn(1, 4, 8, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    v = v.clamp(-1, 1)
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5)).double()
    x0 = (x - np.sqrt(1 - acp_t) * eps) / np.sqrt(acp_t)
    mean = (beta * np.sqrt(acp_prev) / (1 - acp_t)) * x0 \
        + ((1 - acp_prev) * np.sqrt(1 - beta) / (1 - acp_t)) * x
    post_var = beta * (1 - acp_prev) / (1 - acp_t)
    log_var = (v + 1) / 2 * np.log(beta) + (1 - (v + 1) / 2) * np.log(post_var)
    want = mean + torch.exp(0.5 * log_var) * noise
    out = torch.cat([eps, v], 1).float()
    got = sched.step(out, torch.tensor(t), x.float(),
                     generator=torch.Generator().manual_seed(5)).prev_sample
    assert torch.allclose(got.double(), want, atol=2e-4)


def test_round_vs_truncate(dit_dir):
    reqs = _reqs(2, {"steps": 3, "cfg_scale": 1.0, "scheduler": "ddim"})
    r = np.stack(DiTAdapter(model=str(dit_dir)).generate(reqs)).astype(int)
    t = np.stack(DiTAdapter(model=str(dit_dir), uint8="truncate").generate(reqs)).astype(int)
    assert ((r - t) >= 0).all() and ((r - t) <= 1).all() and (r != t).any()


@pytest.mark.parametrize("sampler,match", [
    ({"steps": 0}, "steps"), ({"cfg_scale": 0.5}, "cfg_scale"), ({"scheduler": "euler"}, "ddpm"),
    ({"guide_channels": 0}, "guide_channels"), ({"mode": "sde"}, "unknown"),
])
def test_bad_sampler_args(sampler, match):
    with pytest.raises(ConfigError, match=match):
        parse_sampler(sampler)


def test_missing_weights_name_the_fix(tmp_path, dit_dir):
    with pytest.raises(WeightsError, match="model=PATH"):
        DiTAdapter(model="nobody/no-such-dit")
    with pytest.raises(WeightsError, match="model=PATH"):
        DiTAdapter(model=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"\[0, 1000\)"):
        DiTAdapter(model=str(dit_dir)).generate([Request("a", 1, {"class": 1000}, {})])


def test_ddpm_without_learned_sigma_uses_fixed_small(tmp_path):
    DiTPipeline(transformer=_transformer(learn_sigma=False), vae=_vae(),
                scheduler=DDPMScheduler()).save_pretrained(tmp_path)
    adapter = DiTAdapter(model=str(tmp_path))
    assert not adapter.learn_sigma
    assert adapter.scheduler("ddpm").config.variance_type == "fixed_small"
    assert adapter.generate(_reqs(1, {"steps": 3}))[0].shape == (16, 16, 3)
