"""The Python API: the functions the CLI calls, for scripts and notebooks.

    import diffbench

    record = diffbench.score("ref/", "samples/", metrics=["fid", "kid"], protocol="torch-fidelity",
                             weights={"inception-2015-12-05": "pt_inception.pth"})
    record["metrics"]["fid"]["value"]

    records = diffbench.run("suites/demo.yaml", model="demo-sit", out="runs/demo")
    records = diffbench.load_results("runs/demo")

`score` is ``diffbench score`` and `run` is ``diffbench run``: the same checks before any work,
the same scoring path (`diffbench.scoring`), the same results records (`diffbench.results`). User
errors raise `diffbench.errors.DiffbenchError` with the message the CLI prints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffbench.errors import ConfigError, DataError


def parse_metrics(metrics: str | Iterable[str]) -> list[str]:
    """``"fid,kid,isc"`` (or a list) → the names, each a metric `score` can compute."""
    from diffbench.metrics.spec import all_specs

    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics)
             if m.strip()]
    usable = [s.name for s in all_specs() if s.family == "distribution" and not s.needs.labels]
    unknown = [m for m in names if m not in usable]
    if unknown or not names:
        raise ConfigError(f"--metrics: unknown {', '.join(unknown) or '(none given)'}; choose "
                          f"from {', '.join(usable)} (two image sets: distribution metrics "
                          "without class labels)")
    return names


def score(real: str | Path, fake: str | Path, metrics: str | Iterable[str] = ("fid",),
          protocol: Any = "torch-fidelity", weights: Mapping[str, str] | None = None,
          device: str = "cpu", batch_size: int = 50, workers: int | None = None,
          bootstrap: int = 0, cache: bool = True,
          metric_args: Mapping[str, Mapping[str, Any]] | None = None,
          kid_subset_size: int | None = None, kid_subsets: int | None = None,
          prc_features: str | None = None, allow_partial: bool = False,
          train: str | Path | None = None, test: str | Path | None = None,
          protocol_args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score the images `fake` against `real` under a protocol; returns the results record.

    `real`/`fake`: a folder (recursive: png, jpg, jpeg, webp), an ADM ``.npz`` batch or a
    statistics file (`diffbench stats compute`). ``record["metrics"][name]["value"]`` holds each
    number (``prc`` writes ``precision`` and ``recall``). `weights` maps weights names to local
    files (``--weights NAME=PATH``). `metric_args` gives metrics arguments as a suite's
    ``args`` do (``{"kid": {"subset_size": 100}}``; ``--metric-arg kid.subset_size=100``): they
    change the protocol's settings, so the record is judged as another protocol (the keywords
    `kid_subset_size`, `kid_subsets`, `prc_features` are aliases, for a metric that is scored).
    `protocol_args` changes the protocol's input settings (``--protocol-arg clean_resize=true``;
    dgm-eval's `clean_resize`, `max_images`, `subsample_seed`, `arch`), recorded likewise.
    `train`: the model's training images, which the memorization metrics (ct, fls, …) read
    beside the held-out `test` images (default: `real`).
    Arguments, output keys and counts are checked before any feature is extracted. A sample
    store that a run is still writing is refused unless `allow_partial`.
    """
    from diffbench import results
    from diffbench.lock import live_writer
    from diffbench.metrics.spec import output_keys
    from diffbench.preflight import check_device, check_score
    from diffbench.protocols import get_protocol
    from diffbench.scoring import EvalContext, TaskInputs, evaluate_task
    from diffbench.scoring.sides import open_side
    from diffbench.weights import check_names

    check_device(device)
    check_names(weights)
    writer = None if allow_partial else live_writer(fake)
    if writer:
        raise DataError(f"--fake {fake}: {writer} is still writing it; wait for the run to "
                        "finish, or pass --allow-partial to score the images there now")
    base = get_protocol(protocol) if isinstance(protocol, str) else protocol
    names = parse_metrics(metrics)
    base.check_metrics(names)
    _check_train(names, train, test)
    aliases = (("kid", "subset_size", kid_subset_size), ("kid", "subsets", kid_subsets),
               ("prc", "features", prc_features))
    task, resolved = _score_task(base, names, metric_args or {}, aliases, protocol_args or {})
    proto = resolved.protocol
    check_score(resolved.metrics.values(), real, fake)  # counts before any feature is extracted
    start = time.perf_counter()
    real_src, fake_src = open_side(real), open_side(fake)  # data problems before weights ones
    train_src, test_src = (open_side(x) if x is not None else None for x in (train, test))
    inputs = TaskInputs("score", task, base, fake_src, reference=real_src, train=train_src,
                        test=test_src, resolved=resolved)
    ctx = EvalContext(device=device, batch_size=batch_size, workers=workers, bootstrap=bootstrap,
                      cache=cache, weights=dict(weights or {}))
    part = evaluate_task(inputs, ctx)
    record = results.new_record(
        kind="score", protocol=proto.name, protocol_settings=proto.settings(),
        metrics={k: part.metrics[k] for k in output_keys(names) if k in part.metrics},
        counts={"real": part.counts["real"], "fake": part.counts["scored"]},
        inputs={**part.references, "fake": part.generated},
        extractors=part.extractors,
        timings={**part.timings, "total": round(time.perf_counter() - start, 3)},
        environment=results.environment(device=device, dtype="fp32"))
    return json.loads(results.dumps(record, "score"))  # validated, as the --json file holds it


def _score_task(base: Any, names: list[str], metric_args: Mapping[str, Mapping[str, Any]],
                aliases: Iterable[tuple[str, str, Any]],
                protocol_args: Mapping[str, Any]) -> tuple[Any, Any]:
    """The task `score` runs and its resolved metrics: `metric_args`, with the old flags
    (`aliases`: metric, argument, value) laid over them, checked before any work."""
    from diffbench.preflight import check_score_args
    from diffbench.resolve import resolve_task
    from diffbench.suite import TaskMetric, TaskSpec

    given = {m: dict(a) for m, a in metric_args.items()}
    for metric, key, value in aliases:
        if value:
            given.setdefault(metric, {})[key] = value
    check_score_args(names, given, set(metric_args), base)
    task = TaskSpec(kind="score", protocol=base.name, protocol_args=dict(protocol_args),
                    metrics={m: TaskMetric(args=given.get(m, {})) for m in names})
    return task, resolve_task(task.metrics, base, protocol_args=task.protocol_args)


def _check_train(names: list[str], train: Any, test: Any) -> None:
    """Refuse --train/--test without a metric that reads them, and such a metric without."""
    from diffbench.metrics.spec import get_spec, unused_train

    memo = [n for n in names if get_spec(n).needs.train]
    if memo and train is None:
        verb = "needs" if len(memo) == 1 else "need"
        raise ConfigError(f"--metrics: {', '.join(memo)} {verb} the model's training images; "
                          "pass --train DIR (and --test DIR when --real is not held out)")
    if not memo and (train is not None or test is not None):
        raise ConfigError(unused_train("--train/--test"))


def compute_stats(source: str | Path, output: str | Path, protocol: Any = "torch-fidelity",
                  keep_features: bool = False, weights: Mapping[str, str] | None = None,
                  device: str = "cpu", batch_size: int = 50,
                  workers: int | None = None) -> dict[str, Any]:
    """Write the reference statistics of `source` (``diffbench stats compute``); returns
    ``{"path", "n", "seconds"}``.

    The file holds the Gaussians of every moment layer the protocol's distribution metrics read
    on its extractor (FID, sFID) and, with `keep_features`, the rows of every row layer (KID,
    precision/recall), as the metric specs say.
    """
    from diffbench import stats as stats_lib
    from diffbench.data import open_images
    from diffbench.extract import extract
    from diffbench.features import build_extractor
    from diffbench.metrics.spec import get_spec
    from diffbench.preflight import check_device
    from diffbench.protocols import get_protocol
    from diffbench.resolve import resolve_task
    from diffbench.scoring.distribution import needs, passes
    from diffbench.weights import check_names

    check_device(device)
    check_names(weights)
    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    extractor = build_extractor(proto.extractor, proto.resize, dict(weights or {}), device)
    names = [m for m in proto.metrics if get_spec(m).family == "distribution"]
    resolved = resolve_task({m: {} for m in names}, proto).metrics
    main = next((p for p in passes(list(resolved.values()))
                 if (p.extractor, p.resize) == (proto.extractor, proto.resize)), None)
    moments, rows = needs(main, fake=False) if main is not None else ((), ())
    src = open_images(source)
    fs = extract(src, extractor, moments, rows if keep_features else (), batch_size, workers,
                 desc=str(source))
    describe = {**src.describe(), "content_sha256": src.content_hash()}
    stats_lib.save(output, fs.moments, fs.banks, extractor.fingerprint(), proto.name, describe,
                   fs.n)
    return {"path": Path(output), "n": fs.n, "seconds": fs.seconds}


@dataclass(frozen=True)
class Execution:
    """What `execute` did: the run directory and one outcome per point (`diffbench.runner`)."""

    run_dir: Path
    outcomes: list[Any]


def execute(suite: str | Path, model: str | None = None,
            model_args: Mapping[str, Any] | None = None, out: str | Path | None = None, *,
            overrides: Iterable[str] = (), include: list[Path] | None = None,
            metric_args: Mapping[str, Mapping[str, Any]] | None = None,
            protocol_args: Mapping[str, Any] | None = None, **options: Any) -> Execution:
    """Run a suite's tasks as ``diffbench run``/``generate`` do and return every outcome (the
    commands print them; `run` keeps the records). `metric_args` (``--metric-arg``) give every
    task that scores a metric these arguments, as ``--set tasks.T.metrics.M.args.A=V`` does;
    `protocol_args` (``--protocol-arg``) give every task whose protocol has that input setting
    its value, as ``--set tasks.T.protocol_args.K=V`` does."""
    from diffbench.fsutil import writes_under
    from diffbench.runner import RunOptions, default_run_dir, run_suite
    from diffbench.suite import load_suite

    opts = RunOptions(model=model, model_args=dict(model_args or {}),
                      out=Path(out) if out is not None else None,
                      **{k: tuple(v) if k == "tasks" else v for k, v in options.items()})
    loaded = load_suite(suite, list(overrides), include)
    if metric_args or protocol_args:
        given = _arg_overrides(loaded.suite, metric_args or {}, protocol_args or {})
        loaded = load_suite(suite, [*overrides, *given], include)
    run_dir = default_run_dir(loaded, opts)
    with writes_under(run_dir):
        return Execution(run_dir, run_suite(loaded, opts))


def _arg_overrides(suite: Any, metric_args: Mapping[str, Mapping[str, Any]],
                   protocol_args: Mapping[str, Any]) -> list[str]:
    """``--set`` overrides giving each task that scores a metric its `metric_args`, and each
    task whose protocol has an input setting its `protocol_args` value."""
    from diffbench.protocols import get_protocol

    scored = sorted({m for task in suite.tasks.values() for m in task.metrics})
    settings = {name: get_protocol(task.protocol).inputs for name, task in suite.tasks.items()}
    known = sorted({k for inputs in settings.values() for k in inputs})
    missing = [m for m in metric_args if m not in scored]
    if missing:
        raise ConfigError(f"--metric-arg {missing[0]}: no task of suite '{suite.name}' scores "
                          f"it (its tasks score {', '.join(scored)})")
    missing = [k for k in protocol_args if k not in known]
    if missing:
        raise ConfigError(f"--protocol-arg {missing[0]}: no task of suite '{suite.name}' has a "
                          f"protocol with that setting (theirs: {', '.join(known) or 'none'})")
    return [f"tasks.{name}.metrics.{metric}.args.{arg}={json.dumps(value)}"
            for name, task in suite.tasks.items() for metric, args in metric_args.items()
            if metric in task.metrics for arg, value in args.items()] + [
        f"tasks.{name}.protocol_args.{key}={json.dumps(value)}"
        for name in suite.tasks for key, value in protocol_args.items() if key in settings[name]]


def run(suite: str | Path, model: str | None = None, model_args: Mapping[str, Any] | None = None,
        out: str | Path | None = None, *, overrides: Iterable[str] = (),
        **options: Any) -> list[dict[str, Any]]:
    """Run a suite (``diffbench run``): generate, score and write ``OUT/results/<task>.json``;
    returns the records written (or reused).

    `options` are `diffbench.runner.RunOptions` fields: ``tasks``, ``device``, ``dtype``,
    ``batch_size``, ``score_batch_size``, ``workers``, ``limit``, ``bootstrap``, ``weights``,
    ``data``, ``sweep`` (``{"rg_scale": [0, 1, 2]}``), ``cache``, ``rescore``, ``fresh``, ...
    `overrides` are ``--set KEY.PATH=VALUE`` strings.
    """
    done = execute(suite, model, model_args, out, overrides=overrides, **options)
    return [o.record for o in done.outcomes if o.record is not None]


def generate(suite: str | Path, model: str, model_args: Mapping[str, Any] | None = None,
             out: str | Path | None = None, *, overrides: Iterable[str] = (),
             **options: Any) -> Execution:
    """Generate a suite's images only (``diffbench generate``): ``OUT/samples/<task>/``."""
    return execute(suite, model, model_args, out, overrides=overrides, generate_only=True,
                   **options)


def load_results(path: str | Path) -> dict[str, Any] | list[dict[str, Any]]:
    """A results file's record, or every record of a run folder (one per task), validated."""
    from diffbench import results
    from diffbench.report.collect import collect

    path = Path(path)
    if not path.is_dir():
        return results.read(path)
    return [results.read(p) for p in collect([path])]
