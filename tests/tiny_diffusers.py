"""Tiny randomly initialised SD 1.x / SDXL pipelines, LoRAs and embeddings, built offline.

Each builder writes a folder with diffusers' `save_pretrained` (or `save_lora_weights`), so the
adapters load them by local path exactly as they load real checkpoints. Nothing is downloaded:
the CLIP tokenizer gets a byte-level vocabulary written here (every byte, with and without the
end-of-word mark, no merges), which tokenises any text character by character.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

HIDDEN = 32  # width of each tiny text encoder


def _bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins for bytes that byte-level BPE (GPT-2/CLIP) uses."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_tokenizer(folder: Path) -> Path:
    """A CLIPTokenizer folder (vocab.json, merges.txt); special tokens take the highest ids."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"),
                        model_max_length=77)
    tok.save_pretrained(folder)
    return folder


def _tokenizer():
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        return CLIPTokenizer.from_pretrained(write_tokenizer(Path(tmp)))


def _text_config(vocab_size: int):
    from transformers import CLIPTextConfig

    # eos_token_id=2 is CLIP's legacy flag: pooled output at argmax(input_ids) = <|endoftext|>
    return CLIPTextConfig(vocab_size=vocab_size, hidden_size=HIDDEN, intermediate_size=37,
                          num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                          projection_dim=HIDDEN, bos_token_id=0, eos_token_id=2, pad_token_id=1,
                          hidden_act="gelu")


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                         down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                         norm_num_groups=4, layers_per_block=1, sample_size=32)


def _sd_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=16,
                                in_channels=4, out_channels=4, norm_num_groups=4,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=HIDDEN, attention_head_dim=4)


def _sdxl_unet():
    from diffusers import UNet2DConditionModel

    # time ids: 6 numbers × addition_time_embed_dim, plus the pooled text embedding of encoder 2
    return UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=16,
                                in_channels=4, out_channels=4, norm_num_groups=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                attention_head_dim=(2, 4), use_linear_projection=True,
                                addition_embed_type="text_time", addition_time_embed_dim=8,
                                transformer_layers_per_block=(1, 1),
                                projection_class_embeddings_input_dim=6 * 8 + HIDDEN,
                                cross_attention_dim=2 * HIDDEN)


def make_sd(folder: Path, seed: int = 0) -> Path:
    """A tiny random Stable Diffusion 1.x pipeline saved to `folder` (64×64 → 32×32 latents)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    tok = _tokenizer()
    pipe = StableDiffusionPipeline(
        vae=_vae(), text_encoder=CLIPTextModel(_text_config(len(tok))), tokenizer=tok,
        unet=_sd_unet(), scheduler=DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085,
                                                 beta_end=0.012, clip_sample=False,
                                                 set_alpha_to_one=False, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def make_sdxl(folder: Path, seed: int = 0) -> Path:
    """A tiny random SDXL pipeline (two CLIP text encoders, text_time UNet, Euler) in `folder`."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    tok = _tokenizer()
    cfg = _text_config(len(tok))
    sched = EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085,
                                   beta_end=0.012, steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(
        vae=_vae(), text_encoder=CLIPTextModel(cfg), text_encoder_2=CLIPTextModelWithProjection(cfg),
        tokenizer=tok, tokenizer_2=tok, unet=_sdxl_unet(), scheduler=sched,
        force_zeros_for_empty_prompt=True)
    pipe.save_pretrained(folder)
    return folder


def _randomise_lora_b(module: torch.nn.Module, std: float) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, std)


def make_lora(base: Path, out: Path, xl: bool, seed: int = 1, rank: int = 4,
              std: float = 0.5, text_encoder: bool = False) -> Path:
    """A random LoRA (DCO's UNet targets) saved as diffusers' `pytorch_lora_weights.safetensors`.

    peft initialises B to zero (a no-op LoRA); B is re-drawn so the LoRA changes the output.
    `text_encoder=True` adds LoRA layers to the text encoder(s) too (q/k/v/out projections).
    """
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    _randomise_lora_b(unet, std)
    layers = {"unet_lora_layers": convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))}
    if text_encoder:
        encoders = [("text_encoder_lora_layers", CLIPTextModel, "text_encoder")]
        if xl:
            encoders.append(("text_encoder_2_lora_layers", CLIPTextModelWithProjection,
                             "text_encoder_2"))
        for key, cls, sub in encoders:
            enc = cls.from_pretrained(base / sub)
            # peft directly: transformers' add_adapter may demand a newer peft than installed
            enc = inject_adapter_in_model(
                LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                           target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]), enc)
            _randomise_lora_b(enc, std)
            layers[key] = convert_state_dict_to_diffusers(get_peft_model_state_dict(enc))
    pipe_cls = StableDiffusionXLPipeline if xl else StableDiffusionPipeline
    pipe_cls.save_lora_weights(out, safe_serialization=True, **layers)
    return out / "pytorch_lora_weights.safetensors"


def make_embeddings(out: Path, xl: bool, token: str = "<dog>", vectors: int = 1,
                    seed: int = 2) -> Path:
    """A textual-inversion file: DCO's SDXL format {clip_l, clip_g} or diffusers' {token: emb}."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if xl:
        tensors = {"clip_l": torch.randn(vectors, HIDDEN, generator=gen),
                   "clip_g": torch.randn(vectors, HIDDEN, generator=gen)}
    else:
        tensors = {token: torch.randn(vectors, HIDDEN, generator=gen)}
    save_file(tensors, str(out))
    return out


@dataclass(frozen=True)
class TinyModels:
    """Paths of the tiny pipelines, LoRAs and embeddings of one test session."""

    sd: Path
    sdxl: Path
    lora_sd: Path
    lora_xl: Path
    lora_xl_te: Path
    emb_sd: Path
    emb_xl: Path


_BUILT: dict[str, TinyModels] = {}


def tiny_models(tmp_path_factory) -> TinyModels:
    """Build (once per session, shared by every test module) the tiny models."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _BUILT:
        root = tmp_path_factory.mktemp("tiny_diffusers")
        make_sd(root / "sd")
        make_sdxl(root / "sdxl")
        _BUILT[key] = TinyModels(
            sd=root / "sd", sdxl=root / "sdxl",
            lora_sd=make_lora(root / "sd", root / "lora_sd", xl=False),
            lora_xl=make_lora(root / "sdxl", root / "lora_xl", xl=True),
            lora_xl_te=make_lora(root / "sdxl", root / "lora_xl_te", xl=True, text_encoder=True),
            emb_sd=make_embeddings(root / "emb" / "sd.safetensors", xl=False),
            emb_xl=make_embeddings(root / "emb" / "learned_embeds.safetensors", xl=True))
    return _BUILT[key]
