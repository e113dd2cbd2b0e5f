"""DINOv2 ViT-S/14, ViT-B/14, ViT-L/14 and ViT-g/14 (dgm-eval's ``--arch``) against the ``dinov2``
package's own model classes (PyPI 0.0.1.dev2, the tests' reference; these tests skip without it).

Layout: each size is built by the package's ``vit_small``/``vit_base``/``vit_large``/
``vit_giant2`` as torch.hub's ``dinov2_<size>`` builds it (patch 14, 518 px, LayerScale 1.0, no
block chunks; ViT-g/14 with ``ffn_layer="swiglufused"``), with every parameter on the meta device
(no memory, no init: ViT-g/14 has 1.1 B parameters): its state dict's key names and shapes are
the official checkpoint's, and diffbench's model of the same size must hold exactly those and
load them strictly; `config_of` must read the size back from them.

Numbers: a random state dict in the package model's layout, loaded into both models, on the
same float64 input. ViT-S/14 runs at full size; ViT-B/14 and ViT-L/14 at their real width and
heads with depth 1 (each block is the same code; depth only repeats it); ViT-g/14's SwiGLU block
at a reduced width (128, 2 heads, hidden (int(512·2/3)+7)//8·8 = 344, the fused FFN's rounding)
and depth 2. Bound: both models compute the same float64 formula and differ only in operation
order (SDPA vs explicit softmax attention, chunked vs whole linear layers): each dot product of
length d ≤ 8192 carries at most γ(d) ≈ d·2⁻⁵³ ≈ 1e-12 relative, and LayerNorm and the residual
stream do not amplify it beyond the block count, so ~1e-11 of the feature scale; 1e-9 of it is
asked (this is a first-order estimate, not a rigorous bound: the observed gap is ~1e-14).
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from diffbench.features import layer_dim
from diffbench.features.dinov2 import DinoV2Extractor, config_of
from diffbench.features.dinov2_vit import SIZES, DinoV2ViT, ViTConfig

vt = pytest.importorskip("dinov2.models.vision_transformer")

_BUILDERS = {"vits14": "vit_small", "vitb14": "vit_base", "vitl14": "vit_large",
             "vitg14": "vit_giant2"}
_FFN = {"vitg14": "swiglufused"}


@contextlib.contextmanager
def _parameters_on_meta():
    """Every parameter a module registers goes to the meta device (shapes only)."""
    register = nn.Module.register_parameter

    def on_meta(self, name, param):
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(self, name, param)

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def _official(size: str) -> nn.Module:
    """The hub's ``dinov2_<size>`` architecture from the dinov2 package, on the meta device."""
    with _parameters_on_meta():
        return getattr(vt, _BUILDERS[size])(patch_size=14, img_size=518, init_values=1.0,
                                            block_chunks=0, ffn_layer=_FFN.get(size, "mlp"))


@pytest.mark.parametrize("size", list(_BUILDERS))
def test_official_layout_loads_strictly(size):
    state = _official(size).state_dict()
    cfg = config_of(state)
    assert cfg == SIZES[size]
    with _parameters_on_meta():
        ours = DinoV2ViT(cfg)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in state.items()}
    ours.load_state_dict(state, strict=True, assign=True)


def test_sizes_are_the_hub_backbones():
    width = {s: (c.embed_dim, c.depth, c.num_heads, c.hidden) for s, c in SIZES.items()}
    assert width == {"vits14": (384, 12, 6, 1536), "vitb14": (768, 12, 12, 3072),
                     "vitl14": (1024, 24, 16, 4096), "vitg14": (1536, 40, 24, 4096)}
    for size, cfg in SIZES.items():  # preflight's widths, known without building a network
        assert layer_dim(f"dinov2-{size}", "dinov2_cls") == cfg.embed_dim


def _reference(cfg: ViTConfig, seed: int) -> nn.Module:
    """The package's model of `cfg` with random, visible weights (float64)."""
    torch.manual_seed(seed)
    ref = vt.DinoVisionTransformer(img_size=cfg.img_size, patch_size=cfg.patch_size,
                                   embed_dim=cfg.embed_dim, depth=cfg.depth,
                                   num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio,
                                   init_values=1.0, ffn_layer=cfg.ffn, block_chunks=0)
    state = ref.state_dict()
    for key, value in state.items():
        scale = 0.5 if value.dim() == 1 else 1.0 / value.shape[-1] ** 0.5
        state[key] = torch.randn_like(value) * scale
        if key.endswith(("norm1.weight", "norm2.weight", "norm.weight")):
            state[key] = 1 + 0.1 * torch.randn_like(value)
    ref.load_state_dict(state, strict=True)
    return ref.double().eval()


_REDUCED = {"vits14": SIZES["vits14"],
            "vitb14": ViTConfig(embed_dim=768, depth=1, num_heads=12),
            "vitl14": ViTConfig(embed_dim=1024, depth=1, num_heads=16),
            "vitg14": ViTConfig(embed_dim=128, depth=2, num_heads=2, ffn="swiglufused")}


@pytest.mark.parametrize("size", list(_REDUCED))
def test_features_equal_the_package_model_float64(size, tmp_path):
    cfg = _REDUCED[size]
    ref = _reference(cfg, seed=len(size) + cfg.depth)
    path = tmp_path / f"dinov2_{size}.pth"
    torch.save({k: v.float() for k, v in ref.state_dict().items()}, path)
    ext = DinoV2Extractor(path, resize_mode="pil", size=size)
    assert ext.name == f"dinov2-{size}" and ext.net.cfg == cfg
    net = ext.net.double()
    ref.load_state_dict(net.state_dict(), strict=True)  # the float32 file's values, in float64
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    with torch.no_grad():
        ours, theirs = net(x), ref(x)
    assert ours.shape == (2, cfg.embed_dim)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-9 * float(theirs.abs().max()))
