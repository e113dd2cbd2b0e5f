"""Our SiT: REPA/SiT key names and parameter counts, checkpoint formats, init, and timm parity."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from diffbench.adapters.sit_checkpoint import infer_config, load_sit_checkpoint
from diffbench.adapters.sit_model import PRESETS, SiT, SiTConfig, timestep_embedding
from diffbench.errors import ConfigError, WeightsError

SMALL = SiTConfig(depth=2, hidden=64, heads=4, patch=2, in_channels=4, input_size=8,
                  num_classes=10, projector_dims=(32,), projector_hidden=48, encoder_depth=1)


def _randomise(model: SiT, seed: int = 0) -> SiT:
    """Non-zero weights everywhere (except pos_embed), so outputs depend on every parameter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "pos_embed":
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def _inputs(cfg: SiTConfig, n: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cfg.in_channels, cfg.input_size, cfg.input_size, generator=g)
    t = torch.rand(n, generator=g)
    y = torch.randint(0, cfg.num_classes + 1, (n,), generator=g)
    return x, t, y


@pytest.fixture(scope="module")
def xl_meta() -> SiT:
    with torch.device("meta"):
        return SiT(PRESETS["SiT-XL/2"])


def test_xl2_parameter_counts(xl_meta):
    total = sum(p.numel() for p in xl_meta.parameters())
    proj = sum(p.numel() for p in xl_meta.projectors.parameters())
    assert proj == 8_131_328
    assert total - proj - xl_meta.pos_embed.numel() == 674_816_272
    assert total == 683_242_512
    assert "pos_embed" in xl_meta.state_dict() and not xl_meta.pos_embed.requires_grad


def test_xl2_keys_and_shapes(xl_meta):
    sd = {k: tuple(v.shape) for k, v in xl_meta.state_dict().items()}
    table = {
        "pos_embed": (1, 256, 1152),
        "x_embedder.proj.weight": (1152, 4, 2, 2), "x_embedder.proj.bias": (1152,),
        "t_embedder.mlp.0.weight": (1152, 256), "t_embedder.mlp.0.bias": (1152,),
        "t_embedder.mlp.2.weight": (1152, 1152), "t_embedder.mlp.2.bias": (1152,),
        "y_embedder.embedding_table.weight": (1001, 1152),
        "projectors.0.0.weight": (2048, 1152), "projectors.0.2.weight": (2048, 2048),
        "projectors.0.4.weight": (768, 2048), "projectors.0.4.bias": (768,),
        "final_layer.linear.weight": (16, 1152), "final_layer.linear.bias": (16,),
        "final_layer.adaLN_modulation.1.weight": (2304, 1152),
        "final_layer.adaLN_modulation.1.bias": (2304,),
    }
    for i in (0, 13, 27):
        table |= {
            f"blocks.{i}.attn.qkv.weight": (3456, 1152), f"blocks.{i}.attn.qkv.bias": (3456,),
            f"blocks.{i}.attn.proj.weight": (1152, 1152), f"blocks.{i}.attn.proj.bias": (1152,),
            f"blocks.{i}.mlp.fc1.weight": (4608, 1152), f"blocks.{i}.mlp.fc1.bias": (4608,),
            f"blocks.{i}.mlp.fc2.weight": (1152, 4608), f"blocks.{i}.mlp.fc2.bias": (1152,),
            f"blocks.{i}.adaLN_modulation.1.weight": (6912, 1152),
            f"blocks.{i}.adaLN_modulation.1.bias": (6912,),
        }
    for key, shape in table.items():
        assert sd[key] == shape, key
    assert "blocks.28.attn.qkv.weight" not in sd
    assert len(sd) == 5 + 2 + 1 + 28 * 10 + 6 + 4  # every key accounted for
    assert infer_config(xl_meta.state_dict()) == PRESETS["SiT-XL/2"]


def test_sit_learn_sigma_xl2_shapes():
    with torch.device("meta"):
        m = SiT(SiTConfig(learn_sigma=True, projector_dims=()))
    sd = m.state_dict()
    assert tuple(sd["final_layer.linear.weight"].shape) == (32, 1152)
    assert not any(k.startswith("projectors") for k in sd)


@pytest.mark.parametrize("fmt", ["bare", "ema", "model", "safetensors"])
def test_checkpoint_formats_roundtrip(tmp_path, fmt):
    torch.manual_seed(0)
    model = _randomise(SiT(SMALL))
    sd = model.state_dict()
    path = tmp_path / ("ckpt.safetensors" if fmt == "safetensors" else "ckpt.pt")
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    elif fmt == "bare":
        torch.save(sd, path)
    else:
        torch.save({fmt: sd, "opt": {"lr": torch.tensor(1e-4)}, "steps": 5}, path)
    loaded = load_sit_checkpoint(path, SMALL)
    assert loaded.config == SMALL and not loaded.training
    x, t, y = _inputs(SMALL)
    with torch.no_grad():
        assert torch.equal(model(x, t, y), loaded(x, t, y))


def test_infers_config_without_preset(tmp_path):
    cfg = SiTConfig(depth=3, hidden=128, heads=2, patch=2, in_channels=4, input_size=8,
                    num_classes=10, projector_dims=(16, 24), projector_hidden=32, encoder_depth=3)
    model = _randomise(SiT(cfg), seed=3)
    torch.save(model.state_dict(), tmp_path / "last.pt")
    # heads are not in a checkpoint: a backbone that is not S/B/L/XL needs them given
    with pytest.raises(ConfigError, match=r"depth 3, hidden size 128 is not a SiT.*heads=N"):
        load_sit_checkpoint(tmp_path / "last.pt")
    with pytest.raises(ConfigError, match="divides the hidden size 128"):
        load_sit_checkpoint(tmp_path / "last.pt", heads=3)
    loaded = load_sit_checkpoint(tmp_path / "last.pt", heads=2)
    assert loaded.config == cfg
    x, t, y = _inputs(cfg)
    with torch.no_grad():
        assert torch.equal(model(x, t, y), loaded(x, t, y))


def test_learn_sigma_checkpoint_velocity(tmp_path):
    cfg = SiTConfig(**{**SMALL.__dict__, "learn_sigma": True, "projector_dims": ()})
    model = _randomise(SiT(cfg), seed=4)
    torch.save(model.state_dict(), tmp_path / "SiT-small.pt")
    loaded = load_sit_checkpoint(tmp_path / "SiT-small.pt", SMALL)  # head follows the file
    assert loaded.config.learn_sigma and loaded.config.projector_dims == ()
    x, t, y = _inputs(cfg)
    with torch.no_grad():
        out, v = loaded(x, t, y), loaded.forward_velocity(x, t, y)
    assert out.shape == (3, 8, 8, 8) and v.shape == (3, 4, 8, 8)
    assert torch.equal(v, out[:, :4])


def test_bad_checkpoints_give_clear_errors(tmp_path):
    sd = _randomise(SiT(SMALL)).state_dict()
    missing = {k: v for k, v in sd.items() if k != "blocks.1.mlp.fc2.bias"}
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match=r"missing key 'blocks\.1\.mlp\.fc2\.bias'"):
        load_sit_checkpoint(tmp_path / "missing.pt", SMALL)
    extra = {**sd, "blocks.0.attn.q_norm.weight": torch.ones(16)}
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(WeightsError, match=r"unexpected key 'blocks\.0\.attn\.q_norm\.weight'"):
        load_sit_checkpoint(tmp_path / "extra.pt", SMALL)
    with pytest.raises(WeightsError, match=r"not the preset SiT-XL/2 .*heads=N"):
        load_sit_checkpoint(tmp_path / "extra.pt", PRESETS["SiT-XL/2"])
    bad = {**sd, "blocks.0.mlp.fc1.weight": torch.zeros(200, 64)}
    torch.save(bad, tmp_path / "shape.pt")
    with pytest.raises(WeightsError, match=r"'blocks\.0\.mlp\.fc1\.weight' has shape \(200, 64\)"):
        load_sit_checkpoint(tmp_path / "shape.pt", SMALL)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        load_sit_checkpoint(tmp_path / "junk.pt")
    torch.save({"args": {"lr": 1}}, tmp_path / "nodict.pt")
    with pytest.raises(WeightsError, match="not a state dict"):
        load_sit_checkpoint(tmp_path / "nodict.pt")
    with pytest.raises(WeightsError, match="not found"):
        load_sit_checkpoint(tmp_path / "absent.pt")


def test_fresh_model_is_adaln_zero():
    torch.manual_seed(0)
    model = SiT(SMALL).eval()
    x, t, y = _inputs(SMALL)
    out, zs = model(x, t, y, return_projections=True)
    assert out.shape == x.shape and torch.count_nonzero(out) == 0
    assert zs[0].shape == (3, 16, 32)  # the projector runs on block `encoder_depth`'s tokens
    pos = model.pos_embed[0]
    assert torch.allclose(pos[1, :16], torch.sin(torch.tensor(1.0) / 10000 ** (torch.arange(16) / 16)))
    assert torch.allclose(pos[4, 32:48], pos[1, :16])  # token 4 = row 1, col 0: second half is h


def test_timestep_embedding_is_cos_then_sin():
    t = torch.tensor([0.0, 0.25, 1.0, 999.0])
    emb = timestep_embedding(t, 256)
    k = torch.arange(128, dtype=torch.float64)
    args = t.double()[:, None] * torch.exp(-math.log(10000.0) * k / 128)[None]
    ref = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    assert emb.shape == (4, 256)
    assert (emb.double() - ref).abs().max() < 1e-4  # float32 args at t=999
    assert torch.equal(emb[0, :128], torch.ones(128)) and torch.equal(emb[0, 128:], torch.zeros(128))


def test_batch_independence():
    model = _randomise(SiT(SMALL), seed=5)
    x, t, y = _inputs(SMALL, n=5)
    with torch.no_grad():
        batch = model(x, t, y)
        single = torch.cat([model(x[i:i + 1], t[i:i + 1], y[i:i + 1]) for i in range(5)])
    diff = (batch - single).abs().max().item()
    assert diff < 1e-5, diff


class _TimmSiT(nn.Module):
    """Reference forward written with timm's PatchEmbed/Attention/Mlp (REPA's building blocks)."""

    def __init__(self, c: SiTConfig):
        super().__init__()
        from timm.models.vision_transformer import Attention, Mlp, PatchEmbed

        self.c = c
        self.x_embedder = PatchEmbed(c.input_size, c.patch, c.in_channels, c.hidden, bias=True)
        self.t_embedder = nn.Module()
        self.t_embedder.mlp = nn.Sequential(nn.Linear(256, c.hidden), nn.SiLU(),
                                            nn.Linear(c.hidden, c.hidden))
        self.y_embedder = nn.Module()
        self.y_embedder.embedding_table = nn.Embedding(c.num_classes + 1, c.hidden)
        self.pos_embed = nn.Parameter(torch.zeros(1, (c.input_size // c.patch) ** 2, c.hidden))
        self.blocks = nn.ModuleList()
        for _ in range(c.depth):
            b = nn.Module()
            b.attn = Attention(c.hidden, num_heads=c.heads, qkv_bias=True)
            b.mlp = Mlp(c.hidden, c.mlp_hidden, act_layer=lambda: nn.GELU(approximate="tanh"))
            b.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(c.hidden, 6 * c.hidden))
            self.blocks.append(b)
        self.final_layer = nn.Module()
        self.final_layer.linear = nn.Linear(c.hidden, c.patch ** 2 * c.out_channels)
        self.final_layer.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(c.hidden, 2 * c.hidden))
        self.projectors = nn.ModuleList(nn.Sequential(
            nn.Linear(c.hidden, c.projector_hidden), nn.SiLU(), nn.Linear(c.projector_hidden,
            c.projector_hidden), nn.SiLU(), nn.Linear(c.projector_hidden, z)) for z in c.projector_dims)

    def forward(self, x, t, y):
        ln = lambda h: nn.functional.layer_norm(h, h.shape[-1:], eps=1e-6)  # noqa: E731
        mod = lambda h, s, k: h * (1 + k[:, None]) + s[:, None]  # noqa: E731
        h = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder.mlp(timestep_embedding(t)) + self.y_embedder.embedding_table(y)
        for b in self.blocks:
            s1, k1, g1, s2, k2, g2 = b.adaLN_modulation(c).chunk(6, dim=-1)
            h = h + g1[:, None] * b.attn(mod(ln(h), s1, k1))
            h = h + g2[:, None] * b.mlp(mod(ln(h), s2, k2))
        s, k = self.final_layer.adaLN_modulation(c).chunk(2, dim=-1)
        out = self.final_layer.linear(mod(ln(h), s, k))
        n, g, p = x.shape[0], self.c.input_size // self.c.patch, self.c.patch
        out = out.reshape(n, g, g, p, p, self.c.out_channels)
        return torch.einsum("nhwpqc->nchpwq", out).reshape(n, self.c.out_channels, g * p, g * p)


def test_parity_with_timm_blocks():
    pytest.importorskip("timm")
    ours = _randomise(SiT(SMALL), seed=6)
    ref = _TimmSiT(SMALL).eval()
    ref.load_state_dict(ours.state_dict(), strict=True)  # same key names, same shapes
    x, t, y = _inputs(SMALL, n=4)
    with torch.no_grad():
        diff = (ours(x, t, y) - ref(x, t, y)).abs().max().item()
    assert diff < 1e-5, diff


@pytest.mark.slow
def test_xl2_full_size_random_model_loads_repa_layout():
    """A real (not meta) random SiT-XL/2, ~675M backbone, loads a state dict built with REPA's
    module layout (timm blocks) strictly; it is never run (2.7 GB of float32 parameters)."""
    pytest.importorskip("timm")
    torch.manual_seed(0)
    model = SiT(PRESETS["SiT-XL/2"])
    backbone = sum(p.numel() for n, p in model.named_parameters()
                   if n != "pos_embed" and not n.startswith("projectors."))
    assert backbone == 674_816_272
    with torch.device("meta"):
        repa = _TimmSiT(PRESETS["SiT-XL/2"]).state_dict()
    zero = torch.zeros(1)
    sd = {k: zero.expand(v.shape) for k, v in repa.items()}  # shapes only, no memory
    assert set(sd) == set(model.state_dict())
    model.load_state_dict(sd, strict=True)
    assert torch.count_nonzero(model.blocks[27].mlp.fc2.weight) == 0
    assert infer_config(model.state_dict()) == PRESETS["SiT-XL/2"]
