"""ODE (Euler/Heun) and SDE (Euler–Maruyama) samplers for linear-interpolant flow models.

Time convention (REPA): t=1 is noise, t=0 is data, x_t = (1-t) x0 + t eps, and the model predicts
the velocity v(x, t, y) = eps - x0 with t passed as a float tensor of shape [B]. Sampler state is
float64; the model input (x and t) is cast to `model_dtype`. Classifier-free guidance runs on a
step iff cfg_scale > 1 and low <= t_cur <= high (both bounds inclusive): the batch is doubled as
cat([x, x]) with labels cat([y, y_null]) (conditional half first) and the drift becomes
d_u + w (d_c - d_u), on all channels or only the first `guide_channels` (DiT/SiT release).
SDE noise comes from per-sample generators, so a sample never depends on its batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from diffbench.errors import ConfigError, shown
from diffbench.sampling.seeding import randn_per_sample

ModelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

MODES = ("ode", "sde")
SOLVERS = ("euler", "heun")


@dataclass(frozen=True)
class SamplerConfig:
    """Settings of one flow sampler run (see the module docstring for the conventions)."""

    mode: str = "ode"
    solver: str = "euler"
    steps: int = 50
    cfg_scale: float = 1.0
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    guide_channels: int | None = None
    last_step: float = 0.04
    null_class: int = 1000

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> SamplerConfig:
        """Build from a suite's sampler mapping; ConfigError names a bad argument and the allowed."""
        allowed = [f.name for f in cls.__dataclass_fields__.values()]
        unknown = sorted(set(args) - set(allowed))
        if unknown:
            raise ConfigError(f"sampler argument '{unknown[0]}' is unknown; "
                              f"allowed: {', '.join(allowed)}")
        kw: dict[str, Any] = {}
        for name, value in args.items():
            kw[name] = _PARSERS[name](value)
        config = cls(**kw)
        if config.mode == "sde" and config.solver != "euler":
            raise ConfigError(f"sampler solver={config.solver!r} is for mode=ode only; "
                              "mode=sde uses Euler–Maruyama (solver=euler)")
        return config

    def guided_at(self, t_cur: float) -> bool:
        """Whether a model evaluation decided at t_cur runs with classifier-free guidance."""
        low, high = self.guidance_interval
        return self.cfg_scale > 1.0 and low <= t_cur <= high


@dataclass
class Stats:
    """Model-evaluation counts of one sampler run (a guided NFE runs a doubled batch)."""

    guided_nfe: int = 0
    unguided_nfe: int = 0
    model_rows: int = 0
    t_evals: list[float] = field(default_factory=list, repr=False)

    @property
    def nfe(self) -> int:
        """Total number of model calls."""
        return self.guided_nfe + self.unguided_nfe


def _bad(name: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"sampler argument {name}={shown(value)} is invalid; expected {expected}")


def _choice(name: str, options: Sequence[str]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in options:
            raise _bad(name, value, "one of " + ", ".join(options))
        return value.lower()
    return parse


def _int(name: str, minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _bad(name, value, f"an integer >= {minimum}")
        return int(value)
    return parse


def _float(name: str, low: float, high: float, low_open: bool = False) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(name, value, f"a number in {'(' if low_open else '['}{low}, {high}]")
        v = float(value)
        if not math.isfinite(v) or v > high or v < low or (low_open and v == low):
            raise _bad(name, value, f"a number in {'(' if low_open else '['}{low}, {high}]")
        return v
    return parse


def _interval(value: Any) -> tuple[float, float]:
    expected = "[low, high] with 0 <= low <= high <= 1 (REPA's t: 1 = noise, 0 = data)"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise _bad("guidance_interval", value, expected)
    try:
        low, high = (_float("guidance_interval", 0.0, 1.0)(v) for v in value)
    except ConfigError:
        raise _bad("guidance_interval", value, expected) from None
    if low > high:
        raise _bad("guidance_interval", value, expected)
    return (low, high)


def _channels(value: Any) -> int | None:
    return None if value is None else _int("guide_channels", 1)(value)


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "mode": _choice("mode", MODES),
    "solver": _choice("solver", SOLVERS),
    "steps": _int("steps", 1),
    "cfg_scale": _float("cfg_scale", 1.0, math.inf),
    "guidance_interval": _interval,
    "guide_channels": _channels,
    "last_step": _float("last_step", 0.0, 1.0, low_open=True),
    "null_class": _int("null_class", 0),
}


def time_grid(config: SamplerConfig) -> list[float]:
    """The float64 time points t_0=1 > ... > t_K=0 the sampler steps through."""
    if config.mode == "sde":
        t = torch.linspace(1.0, config.last_step, config.steps, dtype=torch.float64)
        t = torch.cat([t, torch.zeros(1, dtype=torch.float64)])
    else:
        t = torch.linspace(1.0, 0.0, config.steps + 1, dtype=torch.float64)
    return t.tolist()


def count_nfe(config: SamplerConfig) -> tuple[int, int]:
    """(guided, unguided) model calls of a run with `config`, without running a model."""
    grid = time_grid(config)
    guided = unguided = 0
    last = len(grid) - 2
    for i, t_cur in enumerate(grid[:-1]):
        calls = 2 if (config.mode == "ode" and config.solver == "heun" and i < last) else 1
        if config.guided_at(t_cur):
            guided += calls
        else:
            unguided += calls
    return guided, unguided


def cfg_combine(d_cond: torch.Tensor, d_uncond: torch.Tensor, scale: float,
                guide_channels: int | None = None) -> torch.Tensor:
    """d_u + scale (d_c - d_u); with guide_channels=k only channels [:k], the rest stay d_c."""
    guided = d_uncond + scale * (d_cond - d_uncond)
    if guide_channels is None or guide_channels >= d_cond.shape[1]:
        return guided
    return torch.cat([guided[:, :guide_channels], d_cond[:, guide_channels:]], dim=1)


def _sde_drift(v: torch.Tensor, x: torch.Tensor, t: float) -> torch.Tensor:
    score = (-(1.0 - t) * v - x) / t
    return v - 0.5 * (2.0 * t) * score


class _Evaluator:
    """Runs the model at (x, t) with or without CFG and converts velocity to drift."""

    def __init__(self, model_fn: ModelFn, labels: torch.Tensor, config: SamplerConfig,
                 model_dtype: torch.dtype, stats: Stats):
        self.model_fn, self.labels, self.config = model_fn, labels, config
        self.model_dtype, self.stats = model_dtype, stats
        self.labels2 = torch.cat([labels, torch.full_like(labels, config.null_class)])

    def drift(self, x: torch.Tensor, t: float, guided: bool) -> torch.Tensor:
        """Drift (velocity for ODE) at state x, time t; guided decides CFG."""
        x_in, y_in = (torch.cat([x, x]), self.labels2) if guided else (x, self.labels)
        t_in = torch.ones(x_in.shape[0], device=x.device, dtype=torch.float64) * t
        v = self.model_fn(x_in.to(self.model_dtype), t_in.to(self.model_dtype), y_in)
        v = v.to(torch.float64)
        d = _sde_drift(v, x_in, t) if self.config.mode == "sde" else v
        st = self.stats
        st.model_rows += x_in.shape[0]
        st.t_evals.append(t)
        if guided:
            st.guided_nfe += 1
            d_cond, d_uncond = d.chunk(2)
            return cfg_combine(d_cond, d_uncond, self.config.cfg_scale, self.config.guide_channels)
        st.unguided_nfe += 1
        return d


def sample(model_fn: ModelFn, noise: torch.Tensor, labels: torch.Tensor, config: SamplerConfig,
           generators: Sequence[torch.Generator] | None = None,
           model_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, Stats]:
    """Integrate from `noise` at t=1 to t=0; returns (x0 in float64, Stats)."""
    n = noise.shape[0]
    if labels.shape[0] != n:
        raise ValueError(f"{labels.shape[0]} labels for {n} noise rows")
    if config.mode == "sde" and (generators is None or len(generators) != n):
        raise ValueError(f"SDE sampling needs one generator per sample ({n})")
    stats = Stats()
    ev = _Evaluator(model_fn, labels, config, model_dtype or noise.dtype, stats)
    x = noise.to(torch.float64)
    grid = time_grid(config)
    if config.mode == "sde":
        x = _run_sde(ev, x, grid, generators or [])
    else:
        x = _run_ode(ev, x, grid, heun=config.solver == "heun")
    return x, stats


def _run_ode(ev: _Evaluator, x: torch.Tensor, grid: list[float], heun: bool) -> torch.Tensor:
    last = len(grid) - 2
    for i, (t_cur, t_next) in enumerate(zip(grid[:-1], grid[1:], strict=True)):
        guided = ev.config.guided_at(t_cur)
        dt = t_next - t_cur
        d_cur = ev.drift(x, t_cur, guided)
        x_next = x + dt * d_cur
        if heun and i < last:
            d_prime = ev.drift(x_next, t_next, guided)  # guidance decided at t_cur
            x_next = x + dt * (0.5 * d_cur + 0.5 * d_prime)
        x = x_next
    return x


def _run_sde(ev: _Evaluator, x: torch.Tensor, grid: list[float],
             generators: Sequence[torch.Generator]) -> torch.Tensor:
    shape = tuple(x.shape[1:])
    for t_cur, t_next in zip(grid[:-2], grid[1:-1], strict=True):
        dt = t_next - t_cur
        eps = randn_per_sample(generators, shape, x.device, dtype=torch.float64)
        d_cur = ev.drift(x, t_cur, ev.config.guided_at(t_cur))
        x = x + d_cur * dt + math.sqrt(2.0 * t_cur) * (eps * math.sqrt(abs(dt)))
    t_cur, t_next = grid[-2], grid[-1]
    d_cur = ev.drift(x, t_cur, ev.config.guided_at(t_cur))
    return x + (t_next - t_cur) * d_cur  # last step: deterministic mean
