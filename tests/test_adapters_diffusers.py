"""sd-lora / sdxl-lora adapters and the shared diffusers plumbing, on tiny random pipelines.

Parity: each adapter's images equal diffusers' own pipeline with the same LoRA (loaded the
diffusers way), embeddings and seed. Plus: batch independence, textual-inversion loading (DCO's
SDXL format and diffusers' SD format), one-line WeightsErrors, registry and generate() wiring.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from diffbench.adapters.base import Request
from diffbench.errors import ConfigError, WeightsError
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


def _reqs(n, sampler=SAMPLER, seed0=5, cond=COND):
    return [Request(f"k{i}", seed=seed0 + i, condition=dict(cond), sampler=dict(sampler))
            for i in range(n)]


def _u8(arr):
    return (arr * 255).round().astype(np.uint8)


def _reference(cls, folder, **load):
    import diffusers

    extra = {"safety_checker": None} if cls == "StableDiffusionPipeline" else {}
    pipe = getattr(diffusers, cls).from_pretrained(folder, **extra)
    pipe.set_progress_bar_config(disable=True)
    if "lora" in load:
        pipe.load_lora_weights(str(load["lora"].parent), adapter_name="ref")
    return pipe


@pytest.mark.parametrize("xl", [True, False])
def test_lora_adapter_equals_diffusers(models, xl):
    """Same images as diffusers' pipeline + load_lora_weights + per-seed generators."""
    from diffbench.adapters.sd_lora import SDLoRAAdapter, SDXLLoRAAdapter

    cls, base, lora = ((SDXLLoRAAdapter, models.sdxl, models.lora_xl) if xl
                       else (SDLoRAAdapter, models.sd, models.lora_sd))
    adapter = cls(base=str(base), lora=str(lora))
    ref = _reference(adapter.pipeline_class, base, lora=lora)
    for scale in (1.0, 0.5):
        reqs = _reqs(2, {**SAMPLER, "lora_scale": scale})
        ours = adapter.generate(reqs)
        theirs = _u8(ref(prompt=[COND["prompt"]] * 2, num_inference_steps=3, guidance_scale=7.5,
                         height=32, width=32, output_type="np",
                         cross_attention_kwargs={"scale": scale},
                         generator=[torch.Generator().manual_seed(r.seed) for r in reqs]).images)
        for a, b in zip(ours, theirs, strict=True):
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
        if scale == 1.0:
            assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
    plain = _u8(ref(prompt=COND["prompt"], num_inference_steps=3, height=32, width=32,
                    output_type="np", cross_attention_kwargs={"scale": 0.0},
                    generator=torch.Generator().manual_seed(5)).images)[0]
    assert not np.array_equal(ours[0], plain)  # the LoRA changes the image


def test_image_independent_of_batch(models):
    from diffbench.adapters.sd_lora import SDXLLoRAAdapter

    adapter = SDXLLoRAAdapter(base=str(models.sdxl), lora=str(models.lora_xl), scheduler="euler-a")
    reqs = _reqs(3)
    batch = adapter.generate(reqs)
    alone = adapter.generate([reqs[2]])[0]
    diff = np.abs(batch[2].astype(int) - alone.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # batched kernels may round apart
    assert not np.array_equal(batch[0], batch[2])


def test_mixed_sampler_arguments_are_grouped(models):
    from diffbench.adapters.sd_lora import SDLoRAAdapter

    adapter = SDLoRAAdapter(base=str(models.sd), lora=str(models.lora_sd))
    a = _reqs(2)
    b = _reqs(1, {**SAMPLER, "guidance_scale": 2.0, "height": 48}, seed0=6)
    out = adapter.generate([a[0], b[0], a[1]])
    assert out[1].shape == (48, 32, 3) and out[0].shape == (32, 32, 3)
    assert np.abs(out[2].astype(int) - adapter.generate([a[1]])[0]).max() <= 1


def test_sdxl_embeddings_dco_format(models):
    """DCO's learned_embeds.safetensors {clip_l, clip_g} lands in both encoders under the token."""
    from safetensors.torch import load_file

    from diffbench.adapters.sd_lora import SDXLLoRAAdapter

    adapter = SDXLLoRAAdapter(base=str(models.sdxl), lora=str(models.lora_xl),
                              embeddings=str(models.emb_xl.parent), tokens="<dog>",
                              subject_phrase="<dog>")
    state = load_file(str(models.emb_xl))
    pipe = adapter.pipe
    for tok, enc, key in ((pipe.tokenizer, pipe.text_encoder, "clip_l"),
                          (pipe.tokenizer_2, pipe.text_encoder_2, "clip_g")):
        tid = tok.convert_tokens_to_ids("<dog>")
        assert torch.equal(enc.get_input_embeddings().weight[tid], state[key][0])
    assert adapter._prompts(_reqs(1))[0] == "a <dog> in the jungle"
    info = adapter.describe()
    assert info["embeddings_sha256"] == hashlib.sha256(models.emb_xl.read_bytes()).hexdigest()
    assert info["lora_sha256"] == hashlib.sha256(models.lora_xl.read_bytes()).hexdigest()
    assert info["tokens"] == ["<dog>"] and info["scheduler"] == "EulerDiscreteScheduler"
    assert adapter.generate(_reqs(1))[0].shape == (32, 32, 3)
    with pytest.raises(WeightsError, match="clip_l and clip_g"):
        SDXLLoRAAdapter(base=str(models.sdxl), embeddings=str(models.emb_sd), tokens="<dog>")


def test_sd_embeddings_equal_diffusers(models):
    from diffbench.adapters.sd_lora import SDLoRAAdapter

    adapter = SDLoRAAdapter(base=str(models.sd), embeddings=str(models.emb_sd),
                            subject_phrase="<dog> {class}")
    ref = _reference("StableDiffusionPipeline", models.sd)
    ref.load_textual_inversion(str(models.emb_sd))
    ours = adapter.generate(_reqs(1))[0]
    theirs = _u8(ref(prompt="a <dog> dog in the jungle", num_inference_steps=3, height=32,
                     width=32, output_type="np",
                     generator=torch.Generator().manual_seed(5)).images)[0]
    assert np.array_equal(ours, theirs)


def test_subject_phrase_errors():
    from diffbench.adapters.diffusers_common import subject_prompt

    assert subject_prompt(COND, None, "r") == COND["prompt"]
    assert subject_prompt(COND, "{token} {class} ({subject})", "r") == \
        "a sks dog (dog) in the jungle"
    with pytest.raises(ConfigError, match="subject_phrase"):
        subject_prompt({"prompt": "a dog"}, "<dog>", "request k0")
    with pytest.raises(ConfigError, match="no 'prompt'"):
        subject_prompt({"class": 3}, None, "request k0")


def _one_line_error(exc_info, *needles):
    msg = str(exc_info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg


def test_weights_errors(models, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from diffbench.adapters.dco import DCOAdapter
    from diffbench.adapters.sd_lora import SDLoRAAdapter, SDXLLoRAAdapter

    # the hub library read HF_HUB_OFFLINE when first imported, maybe before conftest set it
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    with pytest.raises(WeightsError) as e:
        SDXLLoRAAdapter(base=str(tmp_path / "missing-model"))
    _one_line_error(e, "base", "missing-model", "hub id")
    with pytest.raises(WeightsError) as e:  # a hub id that is not cached, offline
        DCOAdapter(base="nobody-here/no-such-model", lora=str(models.lora_xl))
    _one_line_error(e, "nobody-here/no-such-model", "hf download", "--model-arg base=")
    with pytest.raises(WeightsError) as e:
        SDXLLoRAAdapter(base=str(models.sdxl), lora=str(tmp_path / "nope.safetensors"))
    _one_line_error(e, "lora", "no such file")
    with pytest.raises(WeightsError) as e:
        SDXLLoRAAdapter(base=str(models.sdxl), lora=str(tmp_path))
    _one_line_error(e, "pytorch_lora_weights.safetensors", "lora_weight_name")
    with pytest.raises(WeightsError) as e:
        SDXLLoRAAdapter(base=str(models.sdxl), lora="nobody-here/no-such-lora")
    _one_line_error(e, "hf download nobody-here/no-such-lora pytorch_lora_weights.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError) as e:
        SDLoRAAdapter(base=str(models.sd), lora=str(bad))
    _one_line_error(e, "bad.safetensors", "cannot read")
    with pytest.raises(WeightsError) as e:  # an SD 1.x LoRA into SDXL
        SDXLLoRAAdapter(base=str(models.sdxl), lora=str(models.lora_sd))
    _one_line_error(e, "lora_sd")


def test_config_errors(models):
    from diffbench.adapters.sd_lora import SDLoRAAdapter

    with pytest.raises(ConfigError, match="scheduler"):
        SDLoRAAdapter(base=str(models.sd), scheduler="fancy")
    adapter = SDLoRAAdapter(base=str(models.sd))
    with pytest.raises(ConfigError, match="multiples"):
        adapter.generate(_reqs(1, {**SAMPLER, "height": 33}))
    with pytest.raises(ConfigError, match="sampler arguments"):
        adapter.generate(_reqs(1, {**SAMPLER, "steps": "many"}))
    with pytest.raises(ConfigError, match="rg_scale"):
        adapter.check_task("prompt", {"rg_scale": 3.0}, "suite")
    with pytest.raises(ConfigError, match="condition 'class'"):
        adapter.check_task("class", {}, "suite")


def test_registry_and_generate(models, tmp_path):
    from diffbench.generate import generate, merge_manifests
    from diffbench.registry import ADAPTERS

    for name in ("sd-lora", "sdxl-lora", "dco"):
        assert ADAPTERS.describe(name).summary
    adapter = ADAPTERS.get("sd-lora")(base=str(models.sd), lora=str(models.lora_sd))
    reqs = _reqs(3)
    rep = generate(adapter, reqs, tmp_path / "s", batch_size=2, progress=False)
    assert rep.made_now == 3 and len(merge_manifests(tmp_path / "s")) == 3
    from PIL import Image

    first = np.asarray(Image.open(tmp_path / "s" / "k0.png"))
    assert np.array_equal(first, adapter.generate(reqs[:1])[0])


@pytest.fixture(scope="module")
def subject_weights(models, tmp_path_factory):
    """Per-subject LoRAs and embeddings (the same token in both: swapping must unload it)."""
    from tests.tiny_diffusers import make_embeddings, make_lora

    root = tmp_path_factory.mktemp("subjects")
    for seed, subject in enumerate(("dog", "cat"), start=10):
        make_lora(models.sdxl, root / subject, xl=True, seed=seed)
        make_embeddings(root / subject / "learned_embeds.safetensors", xl=True, seed=seed)
    return root


def _subject_reqs(subjects, sampler):
    out = []
    for i, subject in enumerate(subjects):
        cond = {**COND, "subject": subject, "class": "dog",
                "prompt": f"a sks dog number {i}", "base_prompt": f"a dog number {i}"}
        out.append(Request(f"{subject}-{i}", seed=40 + i, condition=cond, sampler=dict(sampler)))
    return out


@pytest.mark.parametrize("name", ["sdxl-lora", "dco"])
@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_per_subject_weights(models, subject_weights, name):
    """{subject} templates: weights swap per subject and equal a fixed adapter per subject."""
    from diffbench.registry import ADAPTERS

    cls = ADAPTERS.get(name)
    common = {"base": str(models.sdxl), "tokens": "<sub>", "subject_phrase": "<sub>"}
    swapping = cls(lora=str(subject_weights / "{subject}"),
                   embeddings=str(subject_weights / "{subject}"), **common)
    reqs = _subject_reqs(["dog", "cat", "dog", "cat"], SAMPLER)
    together = swapping.generate(reqs)
    one_by_one = [swapping.generate([r])[0] for r in reversed(reqs)][::-1]
    for subject in ("dog", "cat"):
        fixed = cls(lora=str(subject_weights / subject), embeddings=str(subject_weights / subject),
                    **common)
        for r, a, b in zip(reqs, together, one_by_one, strict=True):
            if r.condition["subject"] == subject:
                ref = fixed.generate([r])[0]
                assert np.abs(a.astype(int) - ref).max() <= 1  # a batch of 2 vs alone
                assert np.array_equal(b, ref)  # alone vs alone: bit-identical
    weights = swapping.describe()["weights"]
    assert set(weights) == {"dog", "cat"}
    assert weights["cat"]["lora_sha256"] == hashlib.sha256(
        (subject_weights / "cat" / "pytorch_lora_weights.safetensors").read_bytes()).hexdigest()


def test_fixed_lora_refuses_second_subject(models, subject_weights):
    from diffbench.adapters.sd_lora import SDXLLoRAAdapter

    reqs = _subject_reqs(["dog", "cat"], SAMPLER)
    fixed = SDXLLoRAAdapter(base=str(models.sdxl), lora=str(subject_weights / "dog"))
    fixed.generate(reqs[:1])
    with pytest.raises(ConfigError, match="one LoRA per subject"):
        fixed.generate(reqs[1:])
    shared = SDXLLoRAAdapter(base=str(models.sdxl), lora=str(subject_weights / "dog"),
                             shared_lora=True)
    assert len(shared.generate(reqs)) == 2
    per = SDXLLoRAAdapter(base=str(models.sdxl), lora=str(subject_weights / "{subject}"))
    with pytest.raises(ConfigError, match="condition\\['subject'\\]"):
        per.generate([Request("x", 1, {"prompt": "a dog"}, dict(SAMPLER))])
