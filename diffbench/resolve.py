"""Resolve once: a task's metrics × their protocols × suite/CLI arguments → one value per metric.

Settings come from the spec's argument defaults, the protocol (its ``params``) and
the arguments of a suite (``metrics: {kid: {args: ...}}``) or the command line (``--metric-arg
kid.subset_size=100``). `resolve_task` lays them over each other here, and nowhere else, into a
`ResolvedTask`: the task's protocol as the record files it (arguments applied, so changed
settings are judged as another protocol by `diffbench.comparability`) and one frozen
`ResolvedMetric` per metric. `task_problems` checks the same inputs (``suites validate``, the
start of ``run`` and ``score``). Display-only arguments (`Arg.display`: ``scale``) are filed
under ``params`` with the others and never make a record another protocol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from diffbench.errors import ConfigError, DiffbenchError
from diffbench.metrics.args import check_args
from diffbench.metrics.spec import MetricSpec, get_spec
from diffbench.protocols import Protocol, get_protocol

MetricArgs = Mapping[str, Mapping[str, Any]]  # metric name → {argument: value}


def _spec(metric: str) -> MetricSpec | None:
    try:
        return get_spec(metric)
    except DiffbenchError:
        return None


def display_args(metric: str) -> set[str]:
    """The arguments of `metric` that only change how its values are shown."""
    spec = _spec(metric)
    return {k for k, a in spec.args.items() if a.display} if spec else set()


def _with_args(protocol: Protocol, metric_args: MetricArgs) -> Protocol:
    """`protocol` with per-metric arguments laid over its ``params`` (recorded as such)."""
    if not any(metric_args.values()):
        return protocol
    params = {k: dict(v) for k, v in protocol.params.items()}
    for metric, args in metric_args.items():
        if args:
            params[metric] = {**params.get(metric, {}), **args}
    return dataclasses.replace(protocol, params=params)


@dataclass(frozen=True)
class ResolvedMetric:
    """One metric of a task as it is computed, recorded and shown."""

    name: str
    protocol: Protocol  # the metric's protocol, with the task's arguments applied
    args: Mapping[str, Any] = field(default_factory=dict)  # what the suite or the CLI gave

    @property
    def spec(self) -> MetricSpec:
        """The metric's spec."""
        return get_spec(self.name)

    @property
    def given(self) -> dict[str, Any]:
        """The protocol's settings of the metric with the arguments on top (no defaults)."""
        return self.protocol.param(self.name)

    @property
    def settings(self) -> dict[str, Any]:
        """What the compute function is called with: defaults < protocol < arguments."""
        return self.spec.settings(self.given)

    @property
    def scale(self) -> float | None:
        """The display scale of the metric's values (None: shown as they are)."""
        scale = self.settings.get("scale")
        return float(scale) if scale is not None else None

    @property
    def outputs(self) -> tuple[str, ...]:
        """The results keys the metric writes."""
        return tuple(o.key for o in self.spec.outputs)

    def feature(self) -> tuple[str, str, str]:
        """(extractor, resize, layer) a distribution metric reads."""
        spec, protocol = self.spec, self.protocol
        picked = spec.features(self.settings) if spec.features else None
        if picked:
            return picked
        if spec.needs.extractor:  # a metric defined by its own network
            return spec.needs.extractor, spec.needs.resize or protocol.resize, spec.needs.layer
        layer = protocol.layers.get(spec.name)
        if layer is None:
            raise ConfigError(f"protocol '{protocol.name}' names no feature layer for "
                              f"'{spec.name}'")
        return protocol.extractor, protocol.resize, layer


@dataclass(frozen=True)
class ResolvedTask:
    """Every metric of one task, resolved (see the module docstring)."""

    protocol: Protocol  # the task's protocol with its metrics' arguments: the record's settings
    metrics: Mapping[str, ResolvedMetric]
    others: Mapping[str, Protocol] = field(default_factory=dict)  # protocols metrics name

    def __getitem__(self, name: str) -> ResolvedMetric:
        return self.metrics[name]

    def __iter__(self):
        return iter(self.metrics.values())


def _entries(metrics: Mapping[str, Any] | list[str]) -> dict[str, tuple[str | None, dict]]:
    """(own protocol, arguments) per metric, from suite entries (``.protocol``, ``.args``),
    plain argument mappings, or a list of names (no arguments)."""
    if not isinstance(metrics, Mapping):
        return {name: (None, {}) for name in metrics}
    out = {}
    for name, entry in metrics.items():
        if isinstance(entry, Mapping):
            out[name] = (None, dict(entry))
        else:
            out[name] = (entry.protocol, dict(entry.args))
    return out


def resolve_task(metrics: Mapping[str, Any] | list[str], protocol: str | Protocol,
                 extra: MetricArgs | None = None,
                 protocol_args: Mapping[str, Any] | None = None) -> ResolvedTask:
    """Resolve a task's `metrics` (suite entries, or name → arguments) under `protocol` with its
    input settings `protocol_args` (`Protocol.with_inputs`), with `extra` arguments (the command
    line's) over the suite's."""
    main = get_protocol(protocol) if isinstance(protocol, str) else protocol
    main = main.with_inputs(protocol_args)
    entries = _entries(metrics)
    for name, args in (extra or {}).items():
        own, given = entries.get(name, (None, {}))
        entries[name] = (own, {**given, **args})
    by_protocol: dict[str, dict[str, dict[str, Any]]] = {}
    for name, (own, args) in entries.items():
        by_protocol.setdefault(own or main.name, {})[name] = args
    applied = {p: _with_args(main if p == main.name else get_protocol(p), args)
               for p, args in by_protocol.items()}
    task_protocol = applied.get(main.name, main)
    resolved = {name: ResolvedMetric(name, applied[own or main.name], args)
                for name, (own, args) in entries.items()}
    return ResolvedTask(task_protocol, resolved,
                        {p: v for p, v in sorted(applied.items()) if p != main.name})


def output_collisions(metrics: list[str]) -> list[str]:
    """One line per results key two of `metrics` would both write (``prc`` and ``prdc``)."""
    writers: dict[str, list[str]] = {}
    for name in metrics:
        for key in get_spec(name).outputs:
            writers.setdefault(key.key, []).append(name)
    clashes: dict[tuple[str, ...], list[str]] = {}
    for key, names in writers.items():
        if len(names) > 1:
            clashes.setdefault(tuple(names), []).append(key)
    return [f"{' and '.join(names)} both write {', '.join(keys)}; a task's outputs share one "
            "namespace, so keep one of them here and score the other in a second task (same "
            "dataset and reference)" for names, keys in clashes.items()]


def task_problems(metrics: Mapping[str, Any], protocol: str | Protocol) -> list[str]:
    """What is wrong with a task's metrics (one line each, relative to ``metrics``): arguments
    against their spec's schema, metrics their protocol does not define, protocol settings the
    arguments would not override, and output keys two metrics would both write."""
    problems = []
    for name, (own, args) in _entries(metrics).items():
        where = f"metrics.{name}"
        try:
            spec = get_spec(name)
            proto = get_protocol(own) if own else (
                protocol if isinstance(protocol, Protocol) else get_protocol(protocol))
        except DiffbenchError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if name not in proto.metrics:
            problems.append(f"{where}: protocol '{proto.name}' does not define {name} (it "
                            f"defines {', '.join(proto.metrics)}); {_protocols_with(spec)}")
        problems += [f"{where}.args.{line}" for line in check_args(spec.args, args)]
        if spec.conflicts is not None:
            problems += [f"{where}.args: {line}" for line in spec.conflicts(
                proto.param(name), args)]
    known = [m for m in metrics if _spec(m)]
    return problems + [f"metrics: {line}" for line in output_collisions(known)]


def _protocols_with(spec: MetricSpec) -> str:
    found = spec.protocols()
    if not found:
        return "no protocol defines it"
    return (f"protocols that define it: {', '.join(found)} (set the task's protocol, or "
            f"metrics.{spec.name}.protocol)")
