"""`diffbench run`: generate every task of a suite, score it, and write one results record per task.

For each selected task (and each point of a ``--sweep``), in order:

1. build the requests: from the task dataset's items (try-on pairs, DreamBench prompts) or from
   the condition kind (balanced class labels, unconditional), one seed per key;
2. generate into ``RUN/samples/<point>/`` (resumable; shared by rank under torchrun; merged);
3. score with `diffbench.scoring.evaluate_task` (every metric family once; sharded by rank);
4. write ``RUN/results/<point>.json`` (rank 0), a self-describing record.

Every check that can fail (suite, data locations, adapter vs task, the sample stores' generation
fingerprints: `diffbench.store`) runs before the first image; the run holds the run directory's
lock (`diffbench.lock`) from then on. Rerunning the same command generates only missing images
and rescores only points whose images changed (``rescore=True`` forces it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffbench import dist, results
from diffbench.adapters.base import Adapter
from diffbench.data.base import ImageSource, is_task_dataset
from diffbench.data.samples import SampleSet
from diffbench.errors import ConfigError, DiffbenchError
from diffbench.faults import maybe_fail
from diffbench.generate import GenerationReport, generate, merge_manifests
from diffbench.lock import RunLock, lock_run_dir
from diffbench.protocols import get_protocol
from diffbench.refdata import open_dataset, resolve_data
from diffbench.registry import ADAPTERS
from diffbench.requests import request_sampler, spread, task_requests
from diffbench.run_record import RunFacts, add_pareto, build_record, write_oracles
from diffbench.scoring import EvalContext, TaskInputs, evaluate_task
from diffbench.store import adapter_fingerprint, check_store, prepare_store, settings_fingerprint
from diffbench.suite import LoadedSuite, TaskSpec
from diffbench.weights import check_names


@dataclass
class RunOptions:
    """Everything `diffbench run` takes besides the suite."""

    model: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    out: Path | None = None
    tasks: tuple[str, ...] = ()
    device: str = "cpu"
    dtype: str = "fp32"
    batch_size: int = 16
    score_batch_size: int = 50
    workers: int | None = None
    limit: int | None = None
    bootstrap: int = 0
    weights: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    cache: bool = True
    rescore: bool = False
    fresh: bool = False
    generate_only: bool = False
    shard: tuple[int, int] | None = None
    tf32: bool = False
    progress: bool = True


@dataclass
class Point:
    """One task, or one point of a sweep over it."""

    name: str
    task_name: str
    task: TaskSpec
    sweep: dict[str, Any]
    dataset: Any | None
    requests: list = field(default_factory=list)
    limit: int | None = None  # --limit when it cut the task's requests (a smoke run), else None


@dataclass
class Outcome:
    """What running one point produced."""

    point: Point
    record: dict[str, Any] | None
    path: Path | None
    reused: bool = False
    generation: GenerationReport | None = None


def parse_sweep(items: tuple[str, ...] | list[str]) -> dict[str, list[Any]]:
    """``NAME=v1,v2,...`` (values read as YAML) → {NAME: [v1, v2, ...]}."""
    import yaml

    from diffbench.yamlio import load_yaml

    out: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        parts = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name.strip() or not parts:
            raise ConfigError(f"--sweep '{item}': expected NAME=v1,v2,..., e.g. rg_scale=0,1,2,3")
        try:
            out[name.strip()] = [load_yaml(v, f"--sweep {name.strip()}") for v in parts]
        except yaml.YAMLError:
            raise ConfigError(f"--sweep '{item}': a value is not valid YAML") from None
    return out


def point_name(task: str, sweep: dict[str, Any]) -> str:
    """``task`` or ``task@name=value@...`` (the folder and results file of a sweep point)."""
    return task + "".join(f"@{k}={v}" for k, v in sweep.items())


def build_adapter(model: str, args: dict[str, Any], device: str, dtype: str) -> Adapter:
    """The adapter registered as `model`, constructed with the user's --model-arg values."""
    cls = ADAPTERS.get(model)  # the registry refuses anything but an Adapter subclass
    try:
        return cls(device=device, dtype=dtype, **args)
    except TypeError as exc:
        raise ConfigError(f"--model {model}: bad --model-arg ({exc}); see `diffbench models` for "
                          "its arguments") from None


def select_tasks(loaded: LoadedSuite, names: tuple[str, ...]) -> dict[str, TaskSpec]:
    """The tasks to run (all by default), refusing unknown names."""
    tasks = loaded.suite.tasks
    unknown = [n for n in names if n not in tasks]
    if unknown:
        raise ConfigError(f"--task {unknown[0]}: not in {loaded.path} (tasks: {', '.join(tasks)})")
    return {n: tasks[n] for n in (names or tasks)}


def sweep_values(opts: RunOptions) -> list[dict[str, Any]]:
    """Every combination of the --sweep values ([{}] without a sweep)."""
    return [dict(zip(opts.sweep, combo, strict=True))
            for combo in itertools.product(*opts.sweep.values())] or [{}]


def plan(loaded: LoadedSuite, opts: RunOptions, adapter) -> list[Point]:
    """Every point to run, with its requests, checked before any image is generated."""
    points: list[Point] = []
    for name, task in select_tasks(loaded, opts.tasks).items():
        dataset = None
        if task.dataset is not None:
            ds = task.dataset
            dataset = open_dataset(ds.name, ds.reader, ds.args, opts.data,
                                   where=f"{loaded.path}: tasks.{name}.dataset")
        if task.kind == "score":
            points.append(Point(name, name, task, {}, dataset))
            continue
        if adapter is None:
            raise ConfigError(f"{loaded.path}: task {name} generates images; pass --model "
                              "(see `diffbench models`)")
        values = sweep_values(opts)
        for sweep in values:
            adapter.check_task(task.condition, {**request_sampler(task), **sweep},
                               f"{loaded.path}: task {name}")
        items = dataset.items() if dataset is not None and is_task_dataset(dataset) else None
        requests = task_requests(task, items=items)
        # --limit at or above the task's count makes every image: a full run, not a smoke run
        limit = opts.limit if opts.limit and opts.limit < len(requests) else None
        if limit:
            requests = spread(requests, limit)
        for sweep in values:
            reqs = [dataclasses.replace(r, sampler={**r.sampler, **sweep}) for r in requests]
            adapter.check_keys(reqs)  # requests: conditions fill templated folders, inputs
            points.append(Point(point_name(name, sweep), name, task, sweep, dataset, reqs,
                                limit))
    return points


def _reference(task: TaskSpec, opts: RunOptions, part: str = "dataset") -> Any:
    ref = task.reference
    ds = getattr(ref, part)
    if ds is not None:
        return open_dataset(ds.name, ds.reader, ds.args, opts.data, where=f"reference.{part}")
    if part != "dataset":
        return None
    if ref.stats is not None:
        return resolve_data(ref.stats, opts.data)[0]
    return None


def _samples(point: Point, run_dir: Path, adapter, opts: RunOptions,
             ctx: EvalContext) -> tuple[Any, GenerationReport | None]:
    if point.task.kind == "score":
        if point.dataset is None:
            raise ConfigError(f"task {point.name}: a score task needs dataset: (the generated "
                              "images to score)")
        return point.dataset, None
    sample_dir = results.RunLayout(run_dir).samples(point.name)
    report = generate(adapter, point.requests, sample_dir, opts.batch_size, rank=ctx.rank,
                      world_size=ctx.world_size, shard=opts.shard, progress=opts.progress)
    report.smoke = point.limit is not None
    dist.barrier()
    if opts.shard is not None:
        return None, report  # job-array shard: `diffbench merge` runs when all shards are done
    if dist.is_main():
        merge_manifests(sample_dir)
    dist.barrier()
    return SampleSet(sample_dir), report


def run_point(point: Point, loaded: LoadedSuite, run_dir: Path, adapter, opts: RunOptions,
              ctx: EvalContext) -> Outcome:
    """Generate (or reuse) one point's images, score them and write its results record."""
    start = time.perf_counter()
    samples, report = _samples(point, run_dir, adapter, opts, ctx)
    gen_s = time.perf_counter() - start
    out_path = results.RunLayout(run_dir).results(point.name)
    if opts.generate_only or samples is None:
        return Outcome(point, None, None, generation=report)
    protocol = get_protocol(point.task.protocol)
    fingerprint = _run_fingerprint(loaded, point, opts, samples)
    maybe_fail("before-score")
    if not opts.rescore and out_path.is_file():
        old = results.read(out_path)
        if old.get("notes") and f"fingerprint:{fingerprint}" in old["notes"]:
            return Outcome(point, old, out_path, reused=True, generation=report)
    inputs = TaskInputs(point.name, point.task, protocol, samples, point.dataset,
                        _reference(point.task, opts), train=_reference(point.task, opts, "train"),
                        test=_reference(point.task, opts, "test"))
    scored = evaluate_task(inputs, ctx)
    record = build_record(loaded, point, _facts(opts, ctx), adapter, samples, scored,
                          inputs.resolved, report,
                          {"generate": round(gen_s, 3),
                           "total": round(time.perf_counter() - start, 3)}, fingerprint)
    if dist.is_main():
        results.write(record, out_path)
    return Outcome(point, record, out_path, generation=report)


def _facts(opts: RunOptions, ctx: EvalContext) -> RunFacts:
    """The values a record takes from the options: the options stop here."""
    return RunFacts(opts.model, dict(opts.model_args), opts.device, opts.dtype, ctx.world_size)


def _run_fingerprint(loaded: LoadedSuite, point: Point, opts: RunOptions, samples) -> str:
    """What a stored record must match to be reused: suite data, samples, scoring options."""
    from diffbench import __version__

    text = repr((__version__, loaded.resolved["tasks"][point.task_name], point.sweep,
                 samples.content_hash() if isinstance(samples, ImageSource) else None,
                 opts.model, sorted((k, repr(v)) for k, v in opts.model_args.items()),
                 opts.bootstrap, sorted(opts.weights.items()), sorted(opts.data.items()),
                 opts.limit))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_run_dir(loaded: LoadedSuite, opts: RunOptions) -> Path:
    """``--out``, else runs/<suite>/<model> (runs/<suite>/scores without a model)."""
    return opts.out or Path("runs") / loaded.suite.name / (opts.model or "scores")


def _settings(loaded: LoadedSuite, opts: RunOptions, task_name: str, task: TaskSpec,
              sweep: dict[str, Any]) -> dict[str, Any]:
    return settings_fingerprint(loaded, task_name, task, sweep, opts.model, opts.model_args,
                                opts.dtype)


def check_stores(loaded: LoadedSuite, opts: RunOptions, run_dir: Path) -> None:
    """Refuse stores of another model or other settings, before the model is even loaded."""
    if opts.fresh or not opts.model:
        return
    for name, task in select_tasks(loaded, opts.tasks).items():
        if task.kind == "generate":
            for sweep in sweep_values(opts):
                check_store(results.RunLayout(run_dir).samples(point_name(name, sweep)),
                            _settings(loaded, opts, name, task, sweep))


def open_run(loaded: LoadedSuite, opts: RunOptions, run_dir: Path, points: list[Point],
             adapter) -> RunLock | None:
    """Lock the run directory and prepare each point's store (rank 0); every rank gets the answer.

    Returns the lock (rank 0) for the caller to release; raises on every rank when rank 0 failed.
    """
    lock, error = None, None
    if dist.is_main():
        try:
            lock = lock_run_dir(run_dir, opts.shard)
            described = {"adapter": adapter_fingerprint(adapter)} if adapter is not None else {}
            for p in points:
                if p.task.kind == "generate":
                    prepare_store(results.RunLayout(run_dir).samples(p.name),
                                  {**_settings(loaded, opts, p.task_name, p.task, p.sweep),
                                   **described}, opts.fresh, exclusive=opts.shard is None)
        except DiffbenchError as exc:
            error = exc
            if lock is not None:
                lock.release()
    answers = dist.gather_objects(None if error is None else str(error))  # also a barrier
    if error is not None:
        raise error
    if answers[0] is not None:
        raise DiffbenchError(answers[0])
    return lock


def run_suite(loaded: LoadedSuite, opts: RunOptions) -> list[Outcome]:
    """Run the selected tasks of a suite; returns one outcome per point (records on rank 0)."""
    if opts.fresh and opts.shard is not None:
        raise ConfigError("--fresh with --shard would discard the other shards' images; delete "
                          "RUN/samples/<task> once before starting the shards instead")
    # a misspelt --weights name, before any store or model (a metric argument may name one)
    check_names(opts.weights, {str(m.args["weights"]) for t in loaded.suite.tasks.values()
                               for m in t.metrics.values() if "weights" in m.args})
    run_dir = default_run_dir(loaded, opts)
    from diffbench.readiness import check_ready  # everything missing, at once, before the model

    scores = not opts.generate_only and opts.shard is None
    check_ready(select_tasks(loaded, opts.tasks), device=opts.device, model=opts.model,
                model_args=opts.model_args, data=opts.data, weights=opts.weights, scores=scores)
    check_stores(loaded, opts, run_dir)
    needs_model = any(t.kind == "generate" for t in select_tasks(loaded, opts.tasks).values())
    adapter = None
    if needs_model and opts.model:
        adapter = build_adapter(opts.model, opts.model_args, opts.device, opts.dtype)
    points = plan(loaded, opts, adapter)
    if opts.generate_only:
        points = [p for p in points if p.task.kind == "generate"]
    from diffbench.preflight import check_run  # before the first image or feature

    check_run(points, run_dir, lambda task: _reference(task, opts), device=opts.device,
              sweep=opts.sweep, scores=scores)
    if opts.device.startswith("cuda") or opts.tf32:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = opts.tf32
        torch.backends.cudnn.allow_tf32 = opts.tf32
    dist.init_from_env(opts.device)
    ctx = EvalContext(device=opts.device, batch_size=opts.score_batch_size, workers=opts.workers,
                      bootstrap=opts.bootstrap, cache=opts.cache, weights=dict(opts.weights),
                      data=dict(opts.data), rank=dist.rank(), world_size=dist.world_size())
    lock = open_run(loaded, opts, run_dir, points, adapter)
    try:
        outcomes = [run_point(p, loaded, run_dir, adapter, opts, ctx) for p in points]
        if not opts.generate_only and opts.shard is None:
            if opts.sweep:
                add_pareto(outcomes, run_dir)
            write_oracles(outcomes, loaded, run_dir, _facts(opts, ctx), ctx)
    finally:
        if lock is not None:
            lock.release()
    return outcomes
