"""DCO consistency guidance: the formula, its UNet-call arrangement and the `dco` adapter.

Must-shows: (a) with rg_scale = 0 the adapter's per-step noise prediction and its images equal
plain classifier-free guidance of the base model (diffusers' SDXL pipeline, same seeds); (b) with
LoRA scale 0 the fine-tuned branch equals the base model's output. Tiny random SDXL pipelines.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbench.adapters.base import Request
from diffbench.errors import ConfigError
from diffbench.sampling.dco import Branch, consistency_guidance, guided_eps, rescale_guidance
from tests.tiny_diffusers import tiny_models

COND = {"prompt": "a sks dog in the jungle", "base_prompt": "a dog in the jungle",
        "subject": "dog", "class": "dog", "token": "sks"}
SAMPLER = {"steps": 3, "height": 32, "width": 32, "guidance_scale": 7.5}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # tiny networks gain nothing from threads; on a shared CPU, OpenMP spinning costs 10×
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny_models(tmp_path_factory)


@pytest.fixture(scope="module")
def dco(models):
    from diffbench.adapters.dco import DCOAdapter

    return DCOAdapter(base=str(models.sdxl), lora=str(models.lora_xl))


@pytest.fixture(scope="module")
def dco_te(models):
    """A DCO adapter whose LoRA also has text-encoder layers."""
    from diffbench.adapters.dco import DCOAdapter

    return DCOAdapter(base=str(models.sdxl), lora=str(models.lora_xl_te))


@pytest.fixture(scope="module")
def base_pipe(models):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(models.sdxl)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _reqs(n, sampler, seed0=11, cond=COND):
    return [Request(f"k{i}", seed=seed0 + i, condition=dict(cond), sampler=dict(sampler))
            for i in range(n)]


def _record_unet(pipe):
    outs = []
    handle = pipe.unet.register_forward_hook(lambda m, a, o: outs.append(o[0].clone()))
    return outs, handle


# ---- the formula ---------------------------------------------------------------------------

def test_formula_closed_forms():
    g = torch.Generator().manual_seed(0)
    u, b, f = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    assert torch.equal(consistency_guidance(u, b, f, 7.5, 0.0), u + 7.5 * (b - u))
    assert torch.equal(consistency_guidance(u, b, None, 7.5, 0.0), u + 7.5 * (b - u))
    torch.testing.assert_close(consistency_guidance(u, b, f, 1.0, 1.0), f)  # w=1, r=1: eps_ft
    torch.testing.assert_close(consistency_guidance(u, b, f, 0.0, 0.0), u)
    expanded = (1 - 5.0) * u + (5.0 - 3.0) * b + 3.0 * f
    torch.testing.assert_close(consistency_guidance(u, b, f, 5.0, 3.0), expanded)
    with pytest.raises(ValueError):
        consistency_guidance(u, b, None, 5.0, 3.0)


def test_rescale_matches_diffusers():
    from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl import (
        rescale_noise_cfg,
    )

    g = torch.Generator().manual_seed(1)
    eps, text = torch.randn(3, 4, 8, 8, generator=g) * 3, torch.randn(3, 4, 8, 8, generator=g)
    torch.testing.assert_close(rescale_guidance(eps, text, 0.7),
                               rescale_noise_cfg(eps, text, guidance_rescale=0.7))


def test_call_arrangement():
    """One batched [uncond; base] call with LoRA scale 0, one token call with the LoRA on."""
    calls = []

    def unet(x, t, branch, scale):
        calls.append((x.shape[0], branch.hidden.shape[0], scale))
        return x * branch.hidden.mean() + scale

    x = torch.randn(3, 4, 8, 8)
    pre = Branch(torch.cat([torch.zeros(3, 2, 5), torch.ones(3, 2, 5)]))
    ft = Branch(torch.full((3, 2, 5), 2.0))
    eps, eps_base = guided_eps(unet, x, torch.tensor(10), pre, ft, 7.5, 2.0, 0.8)
    assert calls == [(6, 6, 0.0), (3, 3, 0.8)]
    torch.testing.assert_close(eps_base, x * 0.5)
    torch.testing.assert_close(eps, x * 0.5 + 7.5 * (x * 0.5 - x * 0.5) + 2.0 * (2 * x + 0.8 - x * 0.5))
    calls.clear()
    guided_eps(unet, x, torch.tensor(10), pre, ft, 7.5, 0.0, 0.8)
    assert calls == [(6, 6, 0.0)]  # w_rg = 0: the fine-tuned call is skipped


# ---- must-show (a): rg_scale = 0 is plain CFG of the base model -------------------------------

@pytest.mark.parametrize("which", ["unet-lora", "unet+text-encoder-lora"])
def test_rg_zero_equals_base_model_cfg(dco, dco_te, base_pipe, which):
    """Per-step UNet outputs, guided eps and final images equal diffusers' SDXL CFG on base_prompt."""
    dco = dco if which == "unet-lora" else dco_te
    reqs = _reqs(2, {**SAMPLER, "rg_scale": 0.0})
    steps = []
    dco.step_hook = lambda i, t, eps: steps.append(eps.clone())
    ours_unet, h1 = _record_unet(dco.pipe)
    try:
        ours = dco.generate(reqs)
    finally:
        dco.step_hook = None
        h1.remove()
    ref_unet, h2 = _record_unet(base_pipe)
    try:
        ref = base_pipe(prompt=[COND["base_prompt"]] * 2, guidance_scale=7.5, num_inference_steps=3,
                        height=32, width=32, output_type="np",
                        generator=[torch.Generator().manual_seed(r.seed) for r in reqs]).images
    finally:
        h2.remove()
    assert len(ours_unet) == len(ref_unet) == 3  # one [uncond; base] call per step, LoRA off
    for a, b, eps in zip(ours_unet, ref_unet, steps, strict=True):
        assert torch.equal(a, b)
        u, c = b.chunk(2)
        assert torch.equal(eps, u + 7.5 * (c - u))
    ref_u8 = (ref * 255).round().astype(np.uint8)
    for a, b in zip(ours, ref_u8, strict=True):
        assert np.array_equal(a, b)


def test_rg_zero_lora_cfg_equals_sdxl_lora(models, dco):
    from diffbench.adapters.dco import DCOAdapter
    from diffbench.adapters.sd_lora import SDXLLoRAAdapter

    reqs = _reqs(2, {**SAMPLER, "rg_scale": 0.0})
    lora_cfg = DCOAdapter(base=str(models.sdxl), lora=str(models.lora_xl), rg_zero="lora-cfg")
    plain = SDXLLoRAAdapter(base=str(models.sdxl), lora=str(models.lora_xl))
    a = lora_cfg.generate(reqs)
    b = plain.generate([Request(r.key, r.seed, r.condition, {k: v for k, v in r.sampler.items()
                                                              if k != "rg_scale"}) for r in reqs])
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    formula = dco.generate(reqs)  # the base model at rg 0: a different image
    assert not np.array_equal(formula[0], a[0])


# ---- must-show (b): LoRA scale 0 is the base model -----------------------------------------

@pytest.mark.parametrize("which", ["unet-lora", "unet+text-encoder-lora"])
def test_lora_scale_zero_branch_equals_base(dco, dco_te, base_pipe, which):
    """Fine-tuned branch at LoRA scale 0 (text encoders and UNet) == the base model, bit for bit."""
    from diffbench.adapters.diffusers_common import parse_settings

    dco = dco if which == "unet-lora" else dco_te
    reqs = _reqs(2, SAMPLER)
    with torch.inference_mode():
        _, ft0 = dco.branches(reqs, parse_settings({**SAMPLER, "lora_scale": 0.0}, dco.pipe))
        _, ft1 = dco.branches(reqs, parse_settings(SAMPLER, dco.pipe))
        ref, _, ref_pooled, _ = base_pipe.encode_prompt([COND["prompt"]] * 2, device="cpu",
                                                        do_classifier_free_guidance=False)
        x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(3))
        t = torch.tensor(500)
        off = dco.unet_eps(x, t, ft0, 0.0)
        base = base_pipe.unet(x, t, encoder_hidden_states=ft0.hidden, added_cond_kwargs=ft0.added,
                              return_dict=False)[0]
        on = dco.unet_eps(x, t, ft0, 1.0)
    assert torch.equal(ft0.hidden, ref) and torch.equal(ft0.added["text_embeds"], ref_pooled)
    assert torch.equal(off, base)
    assert (on - base).abs().max() > 1e-3  # the LoRA does change the fine-tuned branch
    text_changed = not torch.equal(ft1.hidden, ref)
    assert text_changed == (which == "unet+text-encoder-lora")


def test_lora_scales_match_diffusers_loading(models, dco):
    """Our exact scale switch equals diffusers' own LoRA loading and cross_attention_kwargs scale."""
    from diffusers import StableDiffusionXLPipeline

    from diffbench.adapters.diffusers_common import parse_settings

    ref = StableDiffusionXLPipeline.from_pretrained(models.sdxl)
    ref.load_lora_weights(str(models.lora_xl.parent), adapter_name="ref")
    reqs = _reqs(1, SAMPLER)
    with torch.inference_mode():
        _, ft = dco.branches(reqs, parse_settings(reqs[0].sampler, dco.pipe))
        x, t = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(4)), torch.tensor(300)
        for scale in (1.0, 0.5):
            ours = dco.unet_eps(x, t, ft, scale)
            theirs = ref.unet(x, t, encoder_hidden_states=ft.hidden, added_cond_kwargs=ft.added,
                              cross_attention_kwargs={"scale": scale}, return_dict=False)[0]
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


# ---- the whole formula at rg_scale > 0, against independently computed branches -------------

def test_rg_positive_step_matches_formula(models, dco, base_pipe):
    from diffusers import StableDiffusionXLPipeline

    lora_pipe = StableDiffusionXLPipeline.from_pretrained(models.sdxl)
    lora_pipe.load_lora_weights(str(models.lora_xl.parent), adapter_name="ref")
    reqs = _reqs(1, {**SAMPLER, "rg_scale": 3.0, "steps": 2})
    steps = []
    dco.step_hook = lambda i, t, eps: steps.append(eps.clone())
    try:
        dco.generate(reqs)
    finally:
        dco.step_hook = None
    with torch.inference_mode():
        base, uncond, pooled, upooled = base_pipe.encode_prompt(COND["base_prompt"], device="cpu")
        tok, _, tpooled, _ = lora_pipe.encode_prompt(COND["prompt"], device="cpu",
                                                     do_classifier_free_guidance=False)
        ids = torch.tensor([[32.0, 32, 0, 0, 32, 32]])
        sched = base_pipe.scheduler
        sched.set_timesteps(2)
        t = sched.timesteps[0]
        x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(reqs[0].seed))
        x_in = sched.scale_model_input(x * sched.init_noise_sigma, t)

        def run(unet, hidden, pool):
            return unet(x_in, t, encoder_hidden_states=hidden,
                        added_cond_kwargs={"text_embeds": pool, "time_ids": ids},
                        return_dict=False)[0]
        u, b = run(base_pipe.unet, uncond, upooled), run(base_pipe.unet, base, pooled)
        f = run(lora_pipe.unet, tok, tpooled)
    torch.testing.assert_close(steps[0], u + 7.5 * (b - u) + 3.0 * (f - b), rtol=1e-4, atol=1e-5)


# ---- batching, seeds, errors -----------------------------------------------------------------

@pytest.mark.parametrize("scheduler", [None, "euler-a"])
def test_image_independent_of_batch(models, scheduler):
    from diffbench.adapters.dco import DCOAdapter

    adapter = DCOAdapter(base=str(models.sdxl), lora=str(models.lora_xl), scheduler=scheduler)
    reqs = _reqs(3, {**SAMPLER, "rg_scale": 2.0})
    batch = adapter.generate(reqs)
    alone = adapter.generate([reqs[1]])[0]
    reordered = adapter.generate([reqs[2], reqs[1]])[1]
    for other in (alone, reordered):
        diff = np.abs(batch[1].astype(int) - other.astype(int))
        # batched kernels may round differently: at most 1 level, on a few pixels
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert not np.array_equal(batch[0], batch[1])  # other seeds, other images


def test_dco_errors(models, dco):
    from diffbench.adapters.dco import DCOAdapter

    with pytest.raises(ConfigError, match="needs --model-arg lora"):
        DCOAdapter(base=str(models.sdxl))
    with pytest.raises(ConfigError, match="rg_zero"):
        DCOAdapter(base=str(models.sdxl), lora=str(models.lora_xl), rg_zero="cfg")
    cond = {k: v for k, v in COND.items() if k != "base_prompt"}
    with pytest.raises(ConfigError, match="base_prompt"):
        dco.generate(_reqs(1, SAMPLER, cond=cond))
    dco.check_task("prompt", {"rg_scale": 1.0, "steps": 30}, "suite")
    with pytest.raises(ConfigError, match="cfg_scale"):
        dco.check_task("prompt", {"cfg_scale": 1.0}, "suite")
