"""The DINOv2 ViT backbone, written to load the official ``dinov2_vit*14_pretrain.pth`` strictly.

The same modules, parameter names and arithmetic as facebookresearch/dinov2
``dinov2/models/vision_transformer.py`` built by ``hub/backbones.py`` for ``dinov2_vitl14``
(what NVlabs/edm2 loads with ``torch.hub.load('facebookresearch/dinov2:main', ...)``): a 14×14
patch embedding, a class token, position embeddings for 518 px (37×37 patches), pre-norm blocks
with LayerScale (``ls1``/``ls2``), LayerNorm eps 1e-6, exact GELU, no register tokens, and a
final norm; `SIZES` holds the four hub backbones (``dinov2_vits14``/``vitb14``/``vitl14``/
``vitg14``), the giant one with the hub's ``ffn_layer="swiglufused"`` (``mlp.w12``/``mlp.w3``:
silu(x₁)·x₂ with the hidden width rounded as ``SwiGLUFFNFused`` does, 4096 for 1536·4); ``forward`` returns the normalised class token, as the hub model's ``forward``
does. No torch.hub, no xformers: attention is `torch.nn.functional.scaled_dot_product_attention`
(the same softmax(q·kᵀ/√d)·v; the tests compare it with the reference code in float64).

Position embeddings are interpolated as the hub's ``interpolate_pos_encoding`` does for
``dinov2_vitl14`` (``interpolate_offset=0.1``, ``interpolate_antialias=False``): in float32,
bicubic, with ``scale_factor = ((w // 14 + 0.1) / 37, (h // 14 + 0.1) / 37)`` rather than an
output size, so the sampling positions are those of that scale (16.1/37 for 224 px), not of
16/37. The PyPI ``dinov2`` 0.0.1.dev2 code computes the same scale (``(w0 + 0.1) / sqrt(N)``)
without the antialias argument (False either way): the two give the same embedding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ViTConfig:
    """Shape of a DINOv2 ViT (``dinov2_vitl14``: 1024 wide, 24 deep, 16 heads)."""

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    patch_size: int = 14
    img_size: int = 518
    interpolate_offset: float = 0.1
    interpolate_antialias: bool = False
    ffn: str = "mlp"  # or "swiglufused" (ViT-g/14)
    ffn_hidden: int | None = None  # the hidden width when not the one mlp_ratio gives

    @property
    def hidden(self) -> int:
        """The FFN's hidden width (``SwiGLUFFNFused``: two thirds, rounded up to 8)."""
        if self.ffn_hidden is not None:
            return self.ffn_hidden
        width = int(self.embed_dim * self.mlp_ratio)
        return (int(width * 2 / 3) + 7) // 8 * 8 if self.ffn == "swiglufused" else width


VITL14 = ViTConfig()
# torch.hub's dinov2_vit{s,b,l,g}14 (hub/backbones.py: vit_small/base/large/giant2)
SIZES = {"vits14": ViTConfig(embed_dim=384, depth=12, num_heads=6),
         "vitb14": ViTConfig(embed_dim=768, depth=12, num_heads=12),
         "vitl14": VITL14,
         "vitg14": ViTConfig(embed_dim=1536, depth=40, num_heads=24, ffn="swiglufused")}


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class _LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Block(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, cfg.num_heads)
        self.ls1 = _LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        ffn = _SwiGLU if cfg.ffn == "swiglufused" else _Mlp
        self.mlp = ffn(dim, cfg.hidden)
        self.ls2 = _LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoV2ViT(nn.Module):
    """DINOv2 ViT backbone; ``forward`` gives the class token after the final norm."""

    def __init__(self, cfg: ViTConfig = VITL14) -> None:
        super().__init__()
        self.cfg = cfg
        grid = cfg.img_size // cfg.patch_size
        self.patch_embed = _PatchEmbed(cfg.patch_size, cfg.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, cfg.embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, cfg.embed_dim))  # training only
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)

    def interpolate_pos_encoding(self, x: torch.Tensor, w: int, h: int) -> torch.Tensor:
        """Position embeddings for a w×h input (the hub code's interpolation, see the module)."""
        previous_dtype = x.dtype
        n = self.pos_embed.shape[1] - 1
        if x.shape[1] - 1 == n and w == h:
            return self.pos_embed
        pos = self.pos_embed.float()
        m = int(math.sqrt(n))
        w0, h0 = w // self.cfg.patch_size, h // self.cfg.patch_size
        if self.cfg.interpolate_offset:
            kwargs: dict = {"scale_factor": (float(w0 + self.cfg.interpolate_offset) / m,
                                             float(h0 + self.cfg.interpolate_offset) / m)}
        else:
            kwargs = {"size": (w0, h0)}
        patch = F.interpolate(pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2),
                              mode="bicubic", antialias=self.cfg.interpolate_antialias, **kwargs)
        if tuple(patch.shape[-2:]) != (w0, h0):
            raise ValueError(f"position embeddings interpolated to {tuple(patch.shape[-2:])}, "
                             f"expected {(w0, h0)}")
        patch = patch.permute(0, 2, 3, 1).reshape(1, w0 * h0, -1)
        return torch.cat((pos[:, :1], patch), dim=1).to(previous_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised N×3×H×W images → N×D class tokens after the final norm."""
        _, _, w, h = x.shape
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + self.interpolate_pos_encoding(tokens, w, h)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 0]
