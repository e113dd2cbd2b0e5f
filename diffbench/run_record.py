"""The results record of one run point, and the Pareto summary of a sweep.

A record says what was run (suite name, version, file hash and overrides; task; sweep point;
model and its arguments; the adapter's own description), how (protocol and its effective
settings, sampler settings, seeds, device, dtype, world size), on what (dataset, reference,
extractor fingerprints) and what came out (metrics with sample counts and intervals, timings).
The runner hands over the values it records (`RunFacts`), not its options.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffbench import dist, results
from diffbench.fsutil import hash_file_into
from diffbench.pareto import sweep_front
from diffbench.requests import request_sampler
from diffbench.resolve import ResolvedTask

SEED_RULE = "per image: sha256(f'{suite_seed}/{key}')[:8] big-endian & (2**63-1)"


@dataclass(frozen=True)
class RunFacts:
    """What a run's records say about who made and scored the images (built by the runner)."""

    model: str | None
    model_args: Mapping[str, Any]
    device: str
    dtype: str
    world_size: int

    def environment(self) -> dict[str, Any]:
        """The record's environment block."""
        return results.environment(device=self.device, dtype=self.dtype,
                                   world_size=self.world_size)


def _suite_block(loaded) -> dict[str, Any]:
    digest = hashlib.sha256()
    for path in loaded.files:
        hash_file_into(digest, path)
    return {"name": loaded.suite.name, "version": loaded.suite.version, "path": str(loaded.path),
            "sha256": digest.hexdigest(), "overrides": dict(loaded.overrides)}


def _model_block(facts: RunFacts, adapter) -> dict[str, Any] | None:
    if adapter is None:
        return None
    args = {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v))
            for k, v in facts.model_args.items()}
    return {"name": facts.model, "args": {**args, "adapter": _jsonable(adapter.describe())}}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _generation_block(point, report, adapter) -> dict[str, Any] | None:
    """What this invocation did: keys planned, images found (skipped) and made now, per rank."""
    if report is None:
        return None
    parts = dist.gather_objects(report.to_dict())
    block = {"planned": sum(p["planned"] for p in parts),
             "skipped": sum(p["skipped"] for p in parts),
             "made_now": sum(p["made_now"] for p in parts),
             "seconds": max(p["seconds"] for p in parts), "ranks": len(parts)}
    block["images_per_s"] = round(block["made_now"] / block["seconds"], 3) if block[
        "seconds"] else 0.0
    stats = adapter.sampler_stats(point.requests[0].sampler) if point.requests else {}
    if stats:
        block["model_evaluations"] = _jsonable(stats)
    return block


def build_record(loaded, point, facts: RunFacts, adapter, samples, scored,
                 resolved: ResolvedTask, report, timings: dict[str, float],
                 fingerprint: str) -> dict[str, Any]:
    """The results record of one point (validated when written).

    ``counts.generated`` is the number of generated images in the store that were scored,
    whatever number of invocations made them (a resumed run counts as an uninterrupted one);
    ``generation.made_now`` is what the last invocation made.
    """
    task = point.task
    generation = _generation_block(point, report, adapter)
    counts: dict[str, int | None] = {"planned": len(point.requests) or len(samples),
                                     "generated": len(samples) if generation else None,
                                     **scored.counts}
    sampler = {**request_sampler(task), **point.sweep} if task.kind == "generate" else {}
    dataset = None
    if task.dataset is not None:
        dataset = {"name": task.dataset.name, "reader": task.dataset.reader,
                   "args": dict(task.dataset.args),
                   "describe": _jsonable(point.dataset.describe())}
    record = results.new_record(
        kind="run", protocol=resolved.protocol.name,
        protocol_settings=_jsonable(resolved.protocol.settings()),
        other_protocols={n: _jsonable(p.settings()) for n, p in resolved.others.items()},
        metrics=scored.metrics, counts=counts, suite=_suite_block(loaded), task=point.task_name,
        model=_model_block(facts, adapter), sweep=dict(point.sweep) or None,
        seeds={"suite_seed": task.generation.seed, "rule": SEED_RULE} if task.kind == "generate"
        else {}, sampler=_jsonable(sampler), extractors=scored.extractors,
        references=_jsonable(scored.references),
        inputs={"fake": _jsonable(samples.describe())}, dataset=dataset, generation=generation,
        environment=facts.environment(), timings={**timings, **scored.timings},
        notes=[*scored.notes, f"fingerprint:{fingerprint}"])
    if point.limit:
        record["smoke"] = True
        record["notes"].insert(0, f"smoke run: --limit {point.limit}; not comparable to full runs")
    return record


def pareto_axes(metrics: list[str]) -> tuple[str, str] | None:
    """Default axes of a sweep's front, from the specs' outputs (``Output.pareto``): the first
    output of the record, in the specs' order, drawn against one of its partners (prompt vs
    subject fidelity: CLIP-T vs DINO; FID vs IS)."""
    from diffbench.metrics.spec import all_specs

    for out in (o for spec in all_specs() for o in spec.outputs):
        if out.key in metrics:
            for y in out.pareto:
                if y in metrics:
                    return out.key, y
    return None


def add_pareto(outcomes: list, run_dir: Path) -> None:
    """Per swept task: the non-dominated points, stored in every record of the sweep, and a plot."""
    by_task: dict[str, list] = {}
    for o in outcomes:
        if o.record is not None and o.point.sweep:
            by_task.setdefault(o.point.task_name, []).append(o)
    for task_name, group in by_task.items():
        metrics = list(group[0].record["metrics"])
        axes = pareto_axes(metrics)
        if axes is None or len(group) < 2 or len(group[0].point.sweep) != 1:
            continue  # a front needs two axes, two points and one swept parameter
        param = ",".join(group[0].point.sweep)
        front = sweep_front([o.record for o in group], axes[0], axes[1], param)
        for o in group:
            o.record["pareto"] = front
            if dist.is_main():
                results.write(o.record, o.path)
        if dist.is_main():
            _plot(front, group[0].record, run_dir, task_name)


def _plot(front: dict[str, Any], record: dict[str, Any], run_dir: Path, task: str) -> None:
    from diffbench.report.plots import plot_fronts

    label = (record.get("model") or {}).get("name", "model")
    out = run_dir / "plots" / f"pareto-{task}"
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_fronts({label: front}, out.with_suffix(".png"), out.with_suffix(".svg"),
                f"{record['suite']['name']} / {task}")


def write_oracles(outcomes: list, loaded, run_dir: Path, facts: RunFacts, ctx) -> list[Path]:
    """Per task with alignment metrics: the real-image oracle row, ``results/<task>.oracle.json``."""
    from diffbench.metrics.spec import get_spec
    from diffbench.protocols import get_protocol
    from diffbench.scoring import TaskInputs

    written, seen = [], set()
    for o in outcomes:
        task, name = o.point.task, o.point.task_name
        metrics = [m for m in task.metrics if get_spec(m).family == "alignment"]
        if not metrics or name in seen or o.record is None:
            continue
        seen.add(name)
        from diffbench.scoring.alignment import oracle

        inputs = TaskInputs(name, task, get_protocol(task.protocol), None, o.point.dataset)
        part = oracle(metrics, inputs, ctx)
        if not part.metrics:
            continue
        resolved = inputs.resolved  # the task's arguments applied, as in the run's own record
        record = results.new_record(
            kind="oracle", protocol=task.protocol,
            protocol_settings=_jsonable(resolved.protocol.settings()),
            other_protocols={n: _jsonable(p.settings()) for n, p in resolved.others.items()},
            metrics=part.metrics, counts={**part.counts}, suite=_suite_block(loaded), task=name,
            model={"name": "real images (oracle)", "args": {}}, extractors=part.extractors,
            references=_jsonable(part.references),
            environment=facts.environment(), timings=part.timings,
            notes=[*part.notes, "oracle: the subject's reference images scored against each "
                   "other (no self-pairs)"])
        path = results.RunLayout(run_dir).root / "results" / f"{name}.oracle.json"
        if dist.is_main():
            results.write(record, path)
        written.append(path)
    return written
