"""Can a measured number stand beside a published one? A verdict with reasons, from the record.

A results record is *comparable* to the published numbers of its protocol when nothing in it
says otherwise:

- every extractor's weights are the protocol's official file: the sha256 recorded in the
  extractor's fingerprint equals the weights registry's sha256 (or its published prefix). Random,
  fine-tuned or unknown weights, or weights whose checksum nobody published, are not comparable;
- it is not a ``--limit`` smoke run;
- it scored as many images as its suite task asks (``counts.scored == counts.planned``), and no
  ``--set`` override changed what the task measures (image counts, dataset, reference,
  condition); sampler settings and seeds may change (they pick the model's configuration), and
  so may the protocol and metrics (judged by the next rule);
- its protocol settings equal the named protocol's (the one published rows are filed under), so
  a suite's metric ``args`` or ``diffbench score --metric-arg`` make it another protocol (not
  display-only ones such as ``scale``: they change how a value is shown, not the value);
  a metric computed under its own ``protocol:`` is judged against that protocol's settings,
  recorded under ``protocol.others``;
- no metric carries a warning in its details (FID from fewer images than feature dimensions).

A reason that concerns only some of a record's metrics (the weights of an extractor that only
they read, a metric computed under its own ``protocol:`` — ImageNet's ``fd_dinov2`` under
``edm2`` beside the ADM metrics) marks those metrics (`Comparability.metrics`), not the record:
the other numbers of the row stay comparable, and the report marks the affected cells.

Records of ``diffbench score`` (kind ``score``) and oracle records have no suite task that asks
for a count: their counts are not judged, every other rule applies.

Library code: the report, the gate and the CLI read the verdict; nothing here prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from diffbench.errors import DiffbenchError

# What a `--set` override may change under `tasks.<task>.` and keep the record comparable: the
# model's sampler settings and seed, and the protocol or metrics (another named protocol files the
# record under that protocol; changed settings and per-metric protocols are judged on their own).
HARMLESS_OVERRIDES = ("generation.sampler", "generation.seed", "description", "protocol",
                      "metrics")


@dataclass(frozen=True)
class WeightsUse:
    """One weights file an extractor used: its registry name, recorded sha256, and verdict."""

    extractor: str
    weights: str
    sha256: str | None
    official: bool | None  # None: no checksum is known to compare with
    name: str = ""  # its key in the record's ``extractors`` block

    @property
    def status(self) -> str:
        """official | not official | unverified."""
        return {True: "official", False: "not official", None: "unverified"}[self.official]

    def text(self) -> str:
        """`inception-2015-12-05 sha256 6726825d0af5… (official)`."""
        digest = f"{self.sha256[:12]}…" if self.sha256 else "not recorded"
        return f"{self.weights} sha256 {digest} ({self.status})"


@dataclass(frozen=True)
class Comparability:
    """The verdict: why a record, or some of its metrics, may not be ranked beside published
    numbers (both empty: all may)."""

    reasons: tuple[str, ...]
    weights: tuple[WeightsUse, ...]
    metrics: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def comparable(self) -> bool:
        """True when no reason stands against the record as a whole."""
        return not self.reasons

    @property
    def reason(self) -> str:
        """The record's reasons as one line."""
        return "; ".join(self.reasons)

    def metric_reasons(self, metric: str) -> tuple[str, ...]:
        """What stands against one metric's value: the record's reasons, then its own."""
        return self.reasons + tuple(self.metrics.get(metric, ()))

    def all_reasons(self) -> tuple[str, ...]:
        """Every reason, the record's first, then each marked metric's (for warnings)."""
        return tuple(dict.fromkeys(self.reasons + tuple(
            r for rs in self.metrics.values() for r in rs)))


Judge = Callable[[str], "bool | None"]


def _digits_official() -> Judge:
    from diffbench.features.digits import DEFAULT_WEIGHTS
    from diffbench.fsutil import file_sha256

    try:
        shipped = file_sha256(DEFAULT_WEIGHTS)
    except OSError:
        return lambda digest: None
    return lambda digest: digest == shipped


def expected_weights(extractor: str) -> list[tuple[str, str, Judge]]:
    """(fingerprint field, weights name, judge of a digest) per weights file of an extractor."""
    from diffbench import weights as w

    if extractor == "digits-classifier":  # the offline demo's classifier ships with diffbench
        return [("weights_sha256", "digits-classifier (shipped)", _digits_official())]
    if extractor.startswith("lpips-"):
        from diffbench.features.lpips import BACKBONE_WEIGHTS, LINEAR_SHA256

        net = extractor.removeprefix("lpips-")
        if net in BACKBONE_WEIGHTS and BACKBONE_WEIGHTS[net] in w.WEIGHTS:
            backbone = w.WEIGHTS[BACKBONE_WEIGHTS[net]]
            return [("backbone_sha256", backbone.name, partial(w.digest_is_official, backbone)),
                    ("linear_sha256", f"lpips-lin-{net} v0.1",
                     lambda digest: digest == LINEAR_SHA256[net])]
    if extractor in w.WEIGHTS:
        return [("weights_sha256", extractor, partial(w.digest_is_official, w.WEIGHTS[extractor]))]
    return []


def weights_used(record: dict[str, Any]) -> list[WeightsUse]:
    """The weights behind a record's extractors, each judged against the registry."""
    out = []
    for name, fingerprint in sorted((record.get("extractors") or {}).items()):
        fingerprint = fingerprint if isinstance(fingerprint, dict) else {}
        extractor = str(fingerprint.get("extractor") or name)
        # an extractor the registry does not know: its digest is recorded, never judged
        unknown: list[tuple[str, str, Judge | None]] = [("weights_sha256", extractor, None)]
        for key, weights, judge in expected_weights(extractor) or unknown:
            digest = fingerprint.get(key) if isinstance(fingerprint.get(key), str) else None
            ok = None if judge is None else judge(digest) if digest is not None else False
            out.append(WeightsUse(extractor, weights, digest, ok, name))
    return out


def _weights_reasons(record: dict[str, Any], used: list[WeightsUse]) -> list[tuple[str, str]]:
    """(extractor name, reason) for each weights file that cannot be confirmed official."""
    reasons = []
    for u in used:
        if u.official is False and u.sha256 is None:
            reasons.append((u.name, f"{u.extractor}: no sha256 of {u.weights} recorded"))
        elif u.official is False:
            reasons.append((u.name, f"{u.extractor}: weights sha256 {u.sha256[:12]}… are not "
                            f"the official {u.weights} file (random, fine-tuned or another file)"))
        elif u.official is None and not expected_weights(u.extractor):
            reasons.append((u.name, f"{u.extractor}: not in diffbench's weights registry; its "
                            "weights cannot be checked"))
        elif u.official is None:
            reasons.append((u.name, f"{u.extractor}: no checksum of {u.weights} is published; "
                            "the weights cannot be confirmed official"))
    linked = [m for m, e in record.get("metrics", {}).items() if isinstance(e, dict)
              and e.get("extractor")]
    if linked and not used:
        reasons.append(("", f"{linked[0]}: computed on an extractor whose fingerprint is not "
                        "recorded; its weights cannot be checked"))
    return reasons


def _readers(record: dict[str, Any], extractor: str) -> set[str]:
    """The metrics whose entries name `extractor`'s fingerprint (all of them when unknown)."""
    from diffbench.features.base import fingerprint_hash

    metrics = record.get("metrics") or {}
    fingerprint = (record.get("extractors") or {}).get(extractor)
    if not extractor or not isinstance(fingerprint, dict):
        return set(metrics)
    digest = fingerprint_hash(fingerprint)
    return {m for m, e in metrics.items() if isinstance(e, dict) and e.get("extractor") == digest}


def _counts_reasons(record: dict[str, Any]) -> list[str]:
    if record.get("kind") != "run":
        return []  # `diffbench score` and oracle records: no suite task asks for a count
    counts = record.get("counts") or {}
    planned = counts.get("planned")
    scored = counts.get("scored", counts.get("fake"))
    if not isinstance(planned, int):
        return ["the record does not say how many images its task asks (counts.planned)"]
    # A protocol that scores at most max_images per set (dgm-eval: 50000, drawn as it draws
    # them) is followed, not cut short, when a larger task scores that many.
    inputs = ((record.get("protocol") or {}).get("settings") or {}).get("inputs") or {}
    cap = inputs.get("max_images")
    expected = min(planned, cap) if isinstance(cap, int) else planned
    if scored != expected:
        return [f"scored {scored} images where the task asks {expected}"]
    return []


def _override_reasons(record: dict[str, Any]) -> list[str]:
    overrides = (record.get("suite") or {}).get("overrides") or {}
    task = record.get("task")
    reasons = []
    for key, value in overrides.items():
        if key == "description" or (key.startswith("tasks.") and task
                                    and not key.startswith(f"tasks.{task}.")
                                    and key != f"tasks.{task}"):
            continue  # another task's or a comment's override
        rest = key.removeprefix(f"tasks.{task}.") if task else key
        if not any(rest == h or rest.startswith(h + ".") for h in HARMLESS_OVERRIDES):
            reasons.append(f"suite overridden: --set {key}={json.dumps(value, default=str)}")
    return reasons


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _difference(actual: Any, expected: Any, where: str = "") -> str | None:
    if isinstance(actual, dict) and isinstance(expected, dict):
        for key in sorted(set(actual) | set(expected)):
            found = _difference(actual.get(key), expected.get(key), f"{where}{key}.")
            if found:
                return found
        return None
    if actual != expected:
        return f"{where.rstrip('.')} is {json.dumps(actual)}, the protocol's is {json.dumps(expected)}"
    return None


def _settings_reasons(name: str, recorded: Any, label: str) -> list[str]:
    """Why settings recorded under protocol `name` are not that protocol's as registered."""
    from diffbench.protocols import get_protocol

    try:
        expected = _plain(get_protocol(name).settings())
    except DiffbenchError:
        return [f"{label} '{name}' is not known to this diffbench; its settings cannot be "
                "checked"]
    actual = current_settings(_plain(recorded or {}))
    if not actual:
        return [f"{label} '{name}': the record does not carry its settings"]
    actual.pop("notes", None)  # prose, not a setting
    expected.pop("notes", None)
    diff = _difference(_without_display(actual), _without_display(expected))
    return [f"{label} '{name}' changed: {diff}"] if diff else []


def current_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Recorded protocol settings in today's shape.

    Records written up to 2026-12-06 carry the settings of ``isc``, ``kid`` and ``prc`` in fields
    of their own beside ``params`` (``settings.kid``); today's carry every metric's under
    ``params`` (``params.kid``). A mapping under a key that is no longer a `Protocol` field is such
    a metric's settings: it moves under ``params``, beneath what ``params`` held for the metric
    (``scale``), and goes when empty (the protocol set none), so an old record and a new one of
    the same protocol compare equal.
    """
    from dataclasses import fields

    from diffbench.protocols import Protocol

    known = {f.name for f in fields(Protocol)}
    former = {k: v for k, v in settings.items() if k not in known and isinstance(v, dict)}
    if not former:
        return settings
    params = settings.get("params") if isinstance(settings.get("params"), dict) else {}
    moved = {m: {**values, **(params.get(m) or {})} for m, values in former.items()
             if values or m in params}
    rest = {k: v for k, v in settings.items() if k not in former}
    return {**rest, "params": {**params, **moved}}


def _without_display(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` without display-only arguments (``scale``): they change how a value is shown,
    not the value."""
    from diffbench.resolve import display_args

    params = settings.get("params")
    if not isinstance(params, dict):
        return settings
    kept = {}
    for metric, values in params.items():
        shown = display_args(metric) if isinstance(values, dict) else set()
        values = {k: v for k, v in values.items() if k not in shown} if shown else values
        if values != {}:
            kept[metric] = values
    return {**settings, "params": kept}


def _protocol_reasons(record: dict[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    """The record's protocol reasons, and those of each metric computed under its own."""
    protocol = record.get("protocol") or {}
    name = protocol.get("name")
    reasons = _settings_reasons(name, protocol.get("settings"), "protocol")
    # A metric may name its own protocol in the suite (ImageNet's fd_dinov2 under edm2 beside the
    # ADM metrics): the record carries that protocol's settings under `protocol.others`, judged
    # as the task's are. A record without them cannot show what the metric was computed with.
    others = protocol.get("others") or {}
    per_metric: dict[str, list[str]] = {}
    for metric, entry in (record.get("metrics") or {}).items():
        other = entry.get("protocol") if isinstance(entry, dict) else None
        if not other or other == name:
            continue
        if other in others:
            found = _settings_reasons(other, others[other], f"{metric}: protocol")
        else:
            found = [f"{metric}: computed under protocol '{other}', whose settings the record "
                     "does not carry"]
        if found:
            per_metric[metric] = found
    return reasons, per_metric


def _warning_reasons(record: dict[str, Any]) -> list[str]:
    details = {name: entry.get("details") for name, entry in (record.get("metrics") or {}).items()
               if isinstance(entry, dict)}
    return [f"{name}: {d['warning']}" for name, d in details.items()
            if isinstance(d, dict) and d.get("warning")]


def comparability(record: dict[str, Any]) -> Comparability:
    """The verdict of one results record (see the module docstring for the rules)."""
    used = weights_used(record)
    metrics = set(record.get("metrics") or {})
    reasons = ["smoke run (--limit): only part of the task"] if record.get("smoke") else []
    per_metric: dict[str, list[str]] = {}
    for extractor, reason in _weights_reasons(record, used):
        readers = _readers(record, extractor)
        if readers and readers < metrics:  # only some metrics read these weights
            for m in readers:
                per_metric.setdefault(m, []).append(reason)
        else:
            reasons.append(reason)
    reasons += _counts_reasons(record)
    reasons += _override_reasons(record)
    protocol, own = _protocol_reasons(record)
    reasons += protocol
    for m, found in own.items():
        per_metric.setdefault(m, []).extend(found)
    reasons += _warning_reasons(record)
    return Comparability(tuple(dict.fromkeys(reasons)), tuple(used),
                         {m: tuple(dict.fromkeys(r)) for m, r in per_metric.items()})
