"""Our own SiT (DiT-style adaLN-Zero transformer) that loads REPA's and SiT's checkpoints strictly.

Parameter names reproduce REPA's `models/sit.py` (timm `PatchEmbed`/`Attention`/`Mlp` names):
`x_embedder.proj`, `t_embedder.mlp.{0,2}`, `y_embedder.embedding_table`, `blocks.{i}.attn.qkv/proj`,
`blocks.{i}.mlp.fc1/fc2`, `blocks.{i}.adaLN_modulation.1`, `final_layer.linear`,
`final_layer.adaLN_modulation.1`, `pos_embed` (fixed, in the state dict) and `projectors.{j}.{0,2,4}`.
Time is passed to the timestep embedder as is (no ×1000); the embedding is cat[cos, sin].
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diffbench.errors import ConfigError, WeightsError


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
_HEADS_BY_HIDDEN = {384: 6, 768: 12, 1024: 16, 1152: 16}


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


def preset_name(config: SiTConfig) -> str | None:
    """Name of the preset with the same backbone (depth, hidden, heads, patch), if any."""
    for name, p in PRESETS.items():
        if (p.depth, p.hidden, p.heads, p.patch) == (config.depth, config.hidden, config.heads,
                                                     config.patch):
            return name
    return None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint: bare state dict, {"ema": ...}, {"model": ...} or safetensors."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"SiT checkpoint {path} not found; give REPA's last.pt or SiT-XL-2-256.pt")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            obj = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any read failure is a user-facing weights problem
        raise WeightsError(f"cannot read SiT checkpoint {path} ({type(exc).__name__}: {exc}); "
                           "is it a complete .pt/.safetensors file?") from exc
    if isinstance(obj, dict):
        for key in ("ema", "model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"SiT checkpoint {path} is not a state dict (nor one under 'ema'/'model')")
    return {re.sub(r"^(module\.|_orig_mod\.)+", "", k): v for k, v in obj.items()}


def infer_config(sd: dict[str, torch.Tensor], where: str = "checkpoint") -> SiTConfig:
    """Architecture from state-dict keys and shapes (heads from the known presets, else hidden/64)."""
    try:
        hidden, in_ch, patch, _ = sd["x_embedder.proj.weight"].shape
        tokens = sd["pos_embed"].shape[1]
        rows = sd["y_embedder.embedding_table.weight"].shape[0]
        mlp_hidden = sd["blocks.0.mlp.fc1.weight"].shape[0]
        out = sd["final_layer.linear.weight"].shape[0]
    except KeyError as exc:
        raise WeightsError(f"SiT {where} lacks key {exc}; is it a SiT/REPA/DiT checkpoint?") from exc
    if out not in (patch * patch * in_ch, 2 * patch * patch * in_ch):
        raise WeightsError(f"SiT {where}: final_layer.linear has {out} outputs; expected "
                           f"{patch * patch * in_ch} or {2 * patch * patch * in_ch}")
    depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k)))
    proj_ids = sorted({int(m.group(1)) for k in sd if (m := re.match(r"projectors\.(\d+)\.", k))})
    proj_dims = tuple(sd[f"projectors.{j}.4.weight"].shape[0] for j in proj_ids
                      if f"projectors.{j}.4.weight" in sd)
    proj_hidden = sd["projectors.0.0.weight"].shape[0] if "projectors.0.0.weight" in sd else 2048
    heads = _HEADS_BY_HIDDEN.get(hidden, max(1, hidden // 64))
    return SiTConfig(depth=depth, hidden=hidden, heads=heads, patch=patch, in_channels=in_ch,
                     input_size=int(round(math.sqrt(tokens))) * patch, num_classes=rows - 1,
                     learn_sigma=out != patch * patch * in_ch, mlp_ratio=mlp_hidden / hidden,
                     projector_dims=proj_dims, projector_hidden=proj_hidden,
                     encoder_depth=min(8, depth))


def _check_keys(model: SiT, sd: dict[str, torch.Tensor], where: str) -> None:
    expected = model.state_dict()
    name = preset_name(model.config)
    arch = f"preset {name}" if name else f"config {model.config}"
    fix = "pass the matching --model-arg model=... or the right checkpoint"
    missing = [k for k in expected if k not in sd]
    if missing:
        raise WeightsError(f"SiT {where}: missing key '{missing[0]}' ({len(missing)} missing) "
                           f"for {arch}; {fix}")
    unexpected = [k for k in sd if k not in expected]
    if unexpected:
        raise WeightsError(f"SiT {where}: unexpected key '{unexpected[0]}' ({len(unexpected)} "
                           f"unexpected) for {arch}; {fix}")
    for k, v in expected.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise WeightsError(f"SiT {where}: '{k}' has shape {tuple(sd[k].shape)}, {arch} "
                               f"expects {tuple(v.shape)}; {fix}")


def load_sit_checkpoint(path: str | Path, config: SiTConfig | None = None) -> SiT:
    """Build a SiT and load a checkpoint strictly; without config the architecture is inferred.

    With a config, its backbone must match; the head variant (learn_sigma, projector dims) always
    follows the checkpoint, so one preset serves REPA (4 channels, projector) and SiT/DiT files
    (learned sigma, no projector).
    """
    sd = read_state_dict(path)
    where = f"checkpoint {path}"
    inferred = infer_config(sd, where)
    if config is None:
        config = inferred
    elif not isinstance(config, SiTConfig):
        raise ConfigError(f"load_sit_checkpoint: config must be a SiTConfig, got {type(config)}")
    else:
        config = dataclasses.replace(config, learn_sigma=inferred.learn_sigma,
                                     projector_dims=inferred.projector_dims,
                                     projector_hidden=inferred.projector_hidden)
    with torch.device("meta"):
        model = SiT(config)
    _check_keys(model, sd, where)
    model.load_state_dict(sd, strict=True, assign=True)
    model.pos_embed.requires_grad_(False)
    return model.eval()
