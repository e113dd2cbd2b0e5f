"""Flow samplers (REPA convention: t=1 noise, t=0 data), CFG with guidance interval, seeding."""

from __future__ import annotations

import copy
import hashlib

import pytest
import torch
from torch import nn

from diffbench.errors import ConfigError
from diffbench.sampling.flow import SamplerConfig, cfg_combine, count_nfe, sample, time_grid
from diffbench.sampling.seeding import (
    make_generators,
    randn_per_sample,
    sample_seed,
)

NULL = 10
SHAPE = (4, 6, 6)


class TinyVelocity(nn.Module):
    """Small conv velocity net conditioned on t and a class label (row NULL = unconditional)."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv1 = nn.Conv2d(4, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 4, 3, padding=1)
        self.emb = nn.Embedding(NULL + 1, 16)
        self.t_lin = nn.Linear(1, 16)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x) + self.emb(y)[:, :, None, None] + self.t_lin(t[:, None])[:, :, None, None]
        return self.conv2(torch.tanh(h)) - 0.5 * x


@pytest.fixture(scope="module")
def net() -> TinyVelocity:
    return TinyVelocity().eval()


def _run(net, seeds, labels, config):
    gens = make_generators(seeds, "cpu")
    noise = randn_per_sample(gens, SHAPE, "cpu")
    with torch.no_grad():
        return sample(net, noise, torch.tensor(labels), config, gens, model_dtype=torch.float32)


def _sde(steps, cfg, high, **kw):
    return SamplerConfig.from_args({"mode": "sde", "steps": steps, "cfg_scale": cfg,
                                    "guidance_interval": [0.0, high], "null_class": NULL, **kw})


# ---------------------------------------------------------------- seeding

def test_sample_seed_is_sha256_63bit_and_key_dependent():
    expected = int.from_bytes(hashlib.sha256(b"7/000042").digest()[:8], "big") & ((1 << 63) - 1)
    assert sample_seed(7, "000042") == expected
    seeds = {sample_seed(0, f"{i:06d}") for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**63 for s in seeds)
    assert sample_seed(0, "a") != sample_seed(1, "a")


def test_per_sample_draws_do_not_depend_on_batch():
    batch = randn_per_sample(make_generators([5, 6, 7]), (2, 3))
    alone = randn_per_sample(make_generators([6]), (2, 3))
    assert torch.equal(batch[1], alone[0])
    assert torch.equal(alone[0], torch.randn(2, 3, generator=torch.Generator().manual_seed(6)))


# ---------------------------------------------------------------- NFE accounting

@pytest.mark.parametrize("high,guided,unguided", [(0.7, 172, 78), (0.75, 185, 65), (0.65, 159, 91)])
@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_repa_sde_guidance_interval_counts(net, high, guided, unguided):
    config = _sde(250, 1.8, high)
    assert count_nfe(config) == (guided, unguided)
    _, stats = _run(net, [1, 2], [3, 4], config)
    assert (stats.guided_nfe, stats.unguided_nfe) == (guided, unguided)
    assert stats.model_rows == 2 * (2 * guided + unguided)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_heun_ode_uses_2n_minus_1_evaluations(net, steps):
    config = SamplerConfig(mode="ode", solver="heun", steps=steps, cfg_scale=1.5, null_class=NULL)
    assert count_nfe(config) == (2 * steps - 1, 0)
    _, stats = _run(net, [1, 2, 3], [0, 1, 2], config)
    assert stats.nfe == 2 * steps - 1 and stats.model_rows == 3 * 2 * (2 * steps - 1)


def test_cfg_scale_one_never_doubles_rows():
    seen = []

    def model(x, t, y):
        seen.append((x.shape[0], bool((y == NULL).any())))
        return -x

    config = SamplerConfig(mode="sde", steps=20, cfg_scale=1.0, null_class=NULL)
    gens = make_generators([1, 2, 3])
    _, stats = sample(model, randn_per_sample(gens, (2,)), torch.tensor([0, 1, 2]), config, gens)
    assert count_nfe(config) == (0, 20) and stats.guided_nfe == 0 and stats.model_rows == 60
    assert seen == [(3, False)] * 20


def test_sde_and_ode_time_grids():
    sde = time_grid(SamplerConfig(mode="sde", steps=250))
    assert len(sde) == 251 and sde[0] == 1.0 and sde[-2] == pytest.approx(0.04) and sde[-1] == 0.0
    assert sde[1] - sde[0] == pytest.approx(-0.96 / 249)
    assert time_grid(SamplerConfig(mode="ode", steps=4)) == [1.0, 0.75, 0.5, 0.25, 0.0]


# ---------------------------------------------------------------- guidance decisions

def _recorder(calls):
    def model(x, t, y):
        calls.append((round(float(t[0]), 6), x.shape[0], bool((y == NULL).any())))
        return torch.zeros_like(x)
    return model


def test_interval_bounds_are_inclusive():
    calls = []
    config = SamplerConfig(mode="ode", steps=4, cfg_scale=2.0, guidance_interval=(0.25, 0.75),
                           null_class=NULL)
    sample(_recorder(calls), torch.zeros(2, 3), torch.tensor([0, 1]), config)
    assert calls == [(1.0, 2, False), (0.75, 4, True), (0.5, 4, True), (0.25, 4, True)]
    assert count_nfe(config) == (3, 1)


def test_heun_correction_uses_guidance_decided_at_t_cur():
    calls = []
    config = SamplerConfig(mode="ode", solver="heun", steps=2, cfg_scale=2.0,
                           guidance_interval=(0.5, 0.5), null_class=NULL)
    sample(_recorder(calls), torch.zeros(2, 3), torch.tensor([0, 1]), config)
    # step 1: t_cur=1 unguided, its correction at t_next=0.5 stays unguided; step 2 (last): guided
    assert calls == [(1.0, 2, False), (0.5, 2, False), (0.5, 4, True)]
    assert count_nfe(config) == (1, 2)


# ---------------------------------------------------------------- CFG algebra

C = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
U = torch.tensor([0.2, 0.4, -1.0, -3.0], dtype=torch.float64)


def _const_model(x, t, y):
    out = torch.where((y == NULL)[:, None], U.to(x.dtype), C.to(x.dtype))
    return out[:, :, None, None].expand_as(x).clone()


@pytest.mark.parametrize("channels", [None, 3])
def test_guided_drift_is_uncond_plus_w_times_difference(channels):
    w = 2.5
    noise = torch.randn(3, 4, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2])
    guided = U + w * (C - U)
    expected_v = guided.clone() if channels is None else torch.cat([guided[:3], C[3:]])
    cfg = SamplerConfig(mode="ode", steps=1, cfg_scale=w, guide_channels=channels, null_class=NULL)
    x0, _ = sample(_const_model, noise, labels, cfg)  # one Euler step 1 -> 0: x0 = x1 - d
    torch.testing.assert_close(noise - x0, expected_v[None, :, None, None].expand_as(noise))
    # SDE, one mean step at t=1: d = v - t*s with s = -x, so x0 = -v_guided (x cancels)
    sde = SamplerConfig(mode="sde", steps=1, cfg_scale=w, guide_channels=channels, null_class=NULL)
    x0, _ = sample(_const_model, noise, labels, sde, make_generators([1, 2, 3]))
    torch.testing.assert_close(-x0, expected_v[None, :, None, None].expand_as(noise))
    if channels == 3:
        torch.testing.assert_close(-x0[:, 3], torch.full_like(x0[:, 3], float(C[3])))


def test_cfg_combine_on_sde_drift_equals_guiding_velocity():
    g = torch.Generator().manual_seed(3)
    x, vc, vu = (torch.randn(5, 4, dtype=torch.float64, generator=g) for _ in range(3))
    t, w = 0.37, 1.8

    def drift(v):
        return v - t * ((-(1 - t) * v - x) / t)

    torch.testing.assert_close(cfg_combine(drift(vc), drift(vu), w),
                               drift(cfg_combine(vc, vu, w)), rtol=0, atol=1e-12)
    part = cfg_combine(vc, vu, w, guide_channels=3)
    assert torch.equal(part[:, 3], vc[:, 3]) and torch.equal(part[:, :3], (vu + w * (vc - vu))[:, :3])


# ---------------------------------------------------------------- per-sample determinism

CONFIGS = {
    "ode-euler": SamplerConfig(mode="ode", steps=8, null_class=NULL),
    "ode-heun-cfg": SamplerConfig(mode="ode", solver="heun", steps=6, cfg_scale=1.5,
                                  guidance_interval=(0.0, 0.7), null_class=NULL),
    "sde": SamplerConfig(mode="sde", steps=12, null_class=NULL),
    "sde-cfg": SamplerConfig(mode="sde", steps=12, cfg_scale=1.8, guidance_interval=(0.0, 0.7),
                             null_class=NULL),
}


def _run64(net, seeds, labels, config):
    gens = make_generators(seeds, "cpu")
    noise = randn_per_sample(gens, SHAPE, "cpu")
    with torch.no_grad():
        return sample(net, noise, torch.tensor(labels), config, gens, model_dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_sample_does_not_depend_on_batch(net, name):
    config = CONFIGS[name]
    seeds = [sample_seed(0, f"{i:06d}") for i in range(7)]
    labels = [3, 1, 4, 1, 5, 9, 2]
    batch, _ = _run(net, seeds, labels, config)
    alone, _ = _run(net, seeds[3:4], labels[3:4], config)
    mixed, _ = _run(net, [11, seeds[3], 12, 13], [0, labels[3], 7, 8], config)
    # The same noise and labels meet float32 conv/linear kernels chosen per batch shape (oneDNN
    # or BLAS blocking, ISA, threads), which round differently, so the three float32 results
    # need not be bit-identical on every machine. Run the same computation in float64 (noise,
    # draws and sampler state are float64 already; only the network changes precision): its
    # rounding is u64/u32 = 2^-29 of float32's, so how far the float32 sample lies from the
    # float64 one (e32) measures the float32 rounding of this very sample, and the float64
    # samples of one key must agree far inside it, whatever batch it ran in. A sample that
    # depended on its batch (another seed, draw or label) would differ by O(1).
    net64 = copy.deepcopy(net).double()
    batch64, _ = _run64(net64, seeds, labels, config)
    alone64, _ = _run64(net64, seeds[3:4], labels[3:4], config)
    mixed64, _ = _run64(net64, [11, seeds[3], 12, 13], [0, labels[3], 7, 8], config)
    e32 = max(float((batch[3] - batch64[3]).abs().max()), float((alone[0] - alone64[0]).abs().max()),
              float((mixed[1] - mixed64[1]).abs().max()))
    # e32 is float32 rounding (~1e-6 relative after a few dozen network calls), not a dtype bug
    assert 0 < e32 < 1e-3 * float(batch64[3].abs().max())
    assert float((batch64[3] - alone64[0]).abs().max()) <= e32  # expected ~2^-29 of it
    assert float((batch64[3] - mixed64[1]).abs().max()) <= e32
    other, _ = _run(net, seeds[4:5], labels[3:4], config)
    assert not torch.allclose(other[0], alone[0])  # a different seed gives a different sample


# ---------------------------------------------------------------- closed form: Gaussian data

M = torch.tensor([1.5, -0.5], dtype=torch.float64)
S = torch.tensor([0.5, 2.0], dtype=torch.float64)


def gaussian_velocity(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact v(x,t) = E[eps - x0 | x_t = x] for x0 ~ N(M, S²), x_t = (1-t) x0 + t eps.

    x_t is Gaussian with mean (1-t)M and variance V = (1-t)²S² + t²; Cov(x0, x_t) = (1-t)S² and
    Cov(eps, x_t) = t, so v = (t - (1-t)S²)/V · (x - (1-t)M) - M.
    """
    t = t.to(torch.float64)[:, None]
    var = (1 - t) ** 2 * S**2 + t**2
    return ((t - (1 - t) * S**2) / var * (x - (1 - t) * M) - M).to(x.dtype)


@pytest.mark.parametrize("config", [
    SamplerConfig(mode="ode", solver="heun", steps=40),
    SamplerConfig(mode="ode", solver="euler", steps=200),
    SamplerConfig(mode="sde", steps=250),
], ids=["ode-heun", "ode-euler", "sde"])
@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_samplers_map_noise_to_gaussian_data(config):
    n = 3000
    gens = make_generators(range(n))
    noise = randn_per_sample(gens, (2,), dtype=torch.float64)
    x0, _ = sample(gaussian_velocity, noise, torch.zeros(n, dtype=torch.long), config, gens)
    # standard error of the mean is S/sqrt(n) ≈ 0.009·S; of the std ≈ 0.013·S
    torch.testing.assert_close(x0.mean(0), M, rtol=0, atol=float(4 * S.max() / n**0.5))
    torch.testing.assert_close(x0.std(0) / S, torch.ones(2, dtype=torch.float64), rtol=0, atol=0.06)
    if config.mode == "ode":  # deterministic transport: the map is monotone per coordinate
        assert torch.equal(noise.argsort(0), x0.argsort(0))


# ---------------------------------------------------------------- configuration errors

@pytest.mark.parametrize("args,match", [
    ({"mode": "ddim"}, "mode='ddim'.*ode, sde"),
    ({"solver": "rk4"}, "solver='rk4'.*euler, heun"),
    ({"mode": "sde", "solver": "heun"}, "mode=ode only"),
    ({"steps": 0}, "steps=0.*integer >= 1"),
    ({"cfg_scale": 0.5}, "cfg_scale=0.5"),
    ({"guidance_interval": [0.8, 0.2]}, "guidance_interval"),
    ({"guidance_interval": 0.7}, "guidance_interval"),
    ({"guide_channels": 0}, "guide_channels=0"),
    ({"last_step": 0.0}, "last_step=0.0"),
    ({"cfg": 1.5}, "'cfg' is unknown; allowed: mode, solver, steps, cfg_scale"),
])
def test_from_args_rejects_bad_values(args, match):
    with pytest.raises(ConfigError, match=match):
        SamplerConfig.from_args(args)


def test_from_args_accepts_suite_values():
    config = SamplerConfig.from_args({"mode": "SDE", "steps": 250, "cfg_scale": 1.8,
                                      "guidance_interval": [0, 0.7], "guide_channels": 3})
    assert config.guidance_interval == (0.0, 0.7) and config.mode == "sde"
    assert config.last_step == 0.04
