"""Our own SiT (DiT-style adaLN-Zero transformer), the network behind `sit-repa` and `demo-sit`.

Parameter names reproduce REPA's `models/sit.py` (timm `PatchEmbed`/`Attention`/`Mlp` names):
`x_embedder.proj`, `t_embedder.mlp.{0,2}`, `y_embedder.embedding_table`, `blocks.{i}.attn.qkv/proj`,
`blocks.{i}.mlp.fc1/fc2`, `blocks.{i}.adaLN_modulation.1`, `final_layer.linear`,
`final_layer.adaLN_modulation.1`, `pos_embed` (fixed, in the state dict) and `projectors.{j}.{0,2,4}`.
Time is passed to the timestep embedder as is (no ×1000); the embedding is cat[cos, sin].
Checkpoints are read and loaded strictly by `sit_checkpoint.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diffbench.errors import ConfigError


@dataclass(frozen=True)
class SiTConfig:
    """Architecture of a SiT / SiT+REPA model (defaults: REPA SiT-XL/2 on 4×32×32 latents)."""

    depth: int = 28
    hidden: int = 1152
    heads: int = 16
    patch: int = 2
    in_channels: int = 4
    input_size: int = 32
    num_classes: int = 1000
    learn_sigma: bool = False
    mlp_ratio: float = 4.0
    class_dropout_prob: float = 0.1
    projector_dims: tuple[int, ...] = (768,)
    projector_hidden: int = 2048
    encoder_depth: int = 8

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ConfigError(f"SiT hidden size {self.hidden} is not divisible by {self.heads} heads")
        if self.input_size % self.patch:
            raise ConfigError(f"SiT input size {self.input_size} is not divisible by patch {self.patch}")

    @property
    def out_channels(self) -> int:
        """Channels the network outputs: 2·in_channels with a learned sigma, else in_channels."""
        return self.in_channels * 2 if self.learn_sigma else self.in_channels

    @property
    def mlp_hidden(self) -> int:
        """Width of the MLP inside each block."""
        return int(round(self.hidden * self.mlp_ratio))


PRESETS: dict[str, SiTConfig] = {
    "SiT-B/2": SiTConfig(depth=12, hidden=768, heads=12, encoder_depth=4),
    "SiT-L/2": SiTConfig(depth=24, hidden=1024, heads=16, encoder_depth=8),
    "SiT-XL/2": SiTConfig(depth=28, hidden=1152, heads=16, encoder_depth=8),
}


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation x·(1 + scale) + shift, broadcast over tokens."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def timestep_embedding(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal timestep embedding cat[cos(t·f), sin(t·f)], f_k = max_period^(-k/half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32,
                                                           device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def sincos_pos_embed_2d(dim: int, grid: int) -> np.ndarray:
    """MAE/DiT fixed 2D sin-cos position embedding, shape (grid², dim), float64."""
    gw, gh = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))
    return np.concatenate([_sincos_1d(dim // 2, gw), _sincos_1d(dim // 2, gh)], axis=1)


def _sincos_1d(dim: int, pos: np.ndarray) -> np.ndarray:
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


class PatchEmbed(nn.Module):
    """Non-overlapping patches → tokens (timm PatchEmbed without norm)."""

    def __init__(self, patch: int, in_channels: int, hidden: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden, kernel_size=patch, stride=patch, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×C×H×W → N×T×hidden."""
        return self.proj(x).flatten(2).transpose(1, 2)


class TimestepEmbedder(nn.Module):
    """Scalar timesteps → hidden vectors (sinusoid of dim 256, then a SiLU MLP)."""

    def __init__(self, hidden: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """N timesteps → N×hidden."""
        emb = timestep_embedding(t, self.freq_dim).to(self.mlp[0].weight.dtype)
        return self.mlp(emb)


class LabelEmbedder(nn.Module):
    """Class labels → hidden vectors; row `num_classes` is the null (CFG) class."""

    def __init__(self, num_classes: int, hidden: int, dropout_prob: float):
        super().__init__()
        self.num_classes, self.dropout_prob = num_classes, dropout_prob
        self.embedding_table = nn.Embedding(num_classes + int(dropout_prob > 0), hidden)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Labels (N,) → N×hidden; in training mode labels are dropped with dropout_prob."""
        if self.training and self.dropout_prob > 0:
            drop = torch.rand(y.shape[0], device=y.device) < self.dropout_prob
            y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        return self.embedding_table(y)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (timm names)."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, hidden * 3, bias=True)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×T×D → N×T×D."""
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class Mlp(nn.Module):
    """fc1 → tanh-GELU → fc2 (timm names)."""

    def __init__(self, hidden: int, mlp_hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden, mlp_hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(mlp_hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×T×D → N×T×D."""
        return self.fc2(self.act(self.fc1(x)))


class SiTBlock(nn.Module):
    """Transformer block with adaLN-Zero conditioning."""

    def __init__(self, hidden: int, heads: int, mlp_hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden, mlp_hidden)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Tokens x (N×T×D) conditioned on c (N×D)."""
        sh_a, sc_a, g_a, sh_m, sc_m, g_m = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + g_a.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh_a, sc_a))
        return x + g_m.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh_m, sc_m))


class FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm and a linear map to patch²·out_channels per token."""

    def __init__(self, hidden: int, patch: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, patch * patch * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """N×T×D → N×T×(p²·C_out)."""
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


def build_projector(hidden: int, projector_hidden: int, z_dim: int) -> nn.Sequential:
    """REPA projector MLP: Linear, SiLU, Linear, SiLU, Linear (indices 0, 2, 4)."""
    return nn.Sequential(nn.Linear(hidden, projector_hidden), nn.SiLU(),
                         nn.Linear(projector_hidden, projector_hidden), nn.SiLU(),
                         nn.Linear(projector_hidden, z_dim))


class SiT(nn.Module):
    """SiT / SiT+REPA backbone; `forward` gives the raw output, `forward_velocity` the velocity."""

    def __init__(self, config: SiTConfig):
        super().__init__()
        c = self.config = config
        self.x_embedder = PatchEmbed(c.patch, c.in_channels, c.hidden)
        self.t_embedder = TimestepEmbedder(c.hidden)
        self.y_embedder = LabelEmbedder(c.num_classes, c.hidden, c.class_dropout_prob)
        tokens = (c.input_size // c.patch) ** 2
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, c.hidden), requires_grad=False)
        self.blocks = nn.ModuleList(SiTBlock(c.hidden, c.heads, c.mlp_hidden)
                                    for _ in range(c.depth))
        self.projectors = nn.ModuleList(build_projector(c.hidden, c.projector_hidden, z)
                                        for z in c.projector_dims)
        self.final_layer = FinalLayer(c.hidden, c.patch, c.out_channels)
        if not self.pos_embed.is_meta:
            self.initialize_weights()

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """DiT initialisation: xavier linears, fixed sin-cos pos_embed, zeroed adaLN and output."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        grid = self.config.input_size // self.config.patch
        pos = sincos_pos_embed_2d(self.config.hidden, grid)
        self.pos_embed.copy_(torch.from_numpy(pos).float().unsqueeze(0))
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        zero = [b.adaLN_modulation[-1] for b in self.blocks]
        zero += [self.final_layer.adaLN_modulation[-1], self.final_layer.linear]
        for lin in zero:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """N×T×(p²·C) → N×C×H×W (einsum nhwpqc->nchpwq)."""
        c, p = self.config.out_channels, self.config.patch
        h = w = int(x.shape[1] ** 0.5)
        x = x.reshape(x.shape[0], h, w, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, h * p, w * p)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                return_projections: bool = False):
        """Latents x (N×C×H×W), times t (N,), labels y (N,) → N×C_out×H×W (and REPA's zs)."""
        h = self.x_embedder(x) + self.pos_embed
        cond = self.t_embedder(t) + self.y_embedder(y)
        zs: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            h = block(h, cond)
            if return_projections and i + 1 == self.config.encoder_depth:
                n, tok, d = h.shape
                zs = [p(h.reshape(-1, d)).reshape(n, tok, -1) for p in self.projectors]
        out = self.unpatchify(self.final_layer(h, cond))
        return (out, zs) if return_projections else out

    def forward_velocity(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The prediction only: the first in_channels output channels (drops a learned sigma)."""
        return self.forward(x, t, y)[:, : self.config.in_channels]
