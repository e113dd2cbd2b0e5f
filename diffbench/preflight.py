"""Checks that run before the first image or feature, so a run fails in seconds, not at the end.

- `suite_problems` (``suites validate`` and every command that loads a suite): each task's
  metrics as `diffbench.resolve.task_problems` checks them (arguments against the spec's schema,
  the protocol defines the metric, no two metrics write one output key).
- `check_run` (the start of ``diffbench run``/``generate``, after planning): device, sweep names
  and values, request keys, the run directory's layout and permissions, and the sample counts
  the distribution metrics need (each spec's ``shortfalls``: KID's subset size, IS splits,
  precision/recall's k; Fréchet distances' bias warning) from the planned images and the
  reference.
- `check_score`, `check_score_args`: the same for ``diffbench score``;
- `check_device`, `check_output_file`: for the other commands.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from diffbench.errors import ConfigError, StorageError, shown
from diffbench.log import logger
from diffbench.names import check_name, check_sweep_value


def check_device(device: str) -> str:
    """`device` when torch can use it here, else a ConfigError saying what to do."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {shown(device)}: expected cpu, cuda, cuda:N or mps")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = torch.version.cuda or "none: a CPU-only build of torch"
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            seen = f", CUDA_VISIBLE_DEVICES={shown(visible)}" if visible is not None else ""
            raise ConfigError(f"--device {device}: no usable CUDA GPU here (torch {torch.__version__}"
                              f", CUDA {build}{seen}); use --device cpu or run on a GPU machine")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"--device {device}: this machine has {count} CUDA device(s), "
                              f"cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {device}: Apple MPS is not available here; use --device cpu")
    return device


def _writable_ancestor(path: Path, what: str, target: Path | None = None) -> None:
    """Refuse a path that cannot be created: a file in the way, or a folder without write access
    (`target`: what the message names, when `path` is the folder it goes into)."""
    probe, path = path, target or path
    while not probe.exists():
        if probe.parent == probe:
            return
        probe = probe.parent
    if not probe.is_dir():
        raise StorageError(f"{probe}: is a file, so {what} {path} cannot be created under it; "
                           "remove it or choose another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise StorageError(f"{probe}: permission denied (cannot write there), so {what} {path} "
                           "cannot be created; make it writable or choose another path")


def check_output_file(path: Path | str, option: str) -> None:
    """Refuse an output file path that is a folder or cannot be written ('-' is stdout)."""
    path = Path(path)
    if str(path) == "-":
        return
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name, e.g. "
                          f"{path / 'results.json'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise StorageError(f"{path}: permission denied (cannot overwrite it); make it writable "
                           f"or give {option} another file")
    _writable_ancestor(path.parent, f"the {option} file", path)


def check_run_dir(run_dir: Path, points: Iterable[str]) -> None:
    """Refuse a run directory whose folders are files, or that cannot be written."""
    names = list(points)
    folders = [run_dir, run_dir / "samples", run_dir / "results",
               *(run_dir / "samples" / n for n in names)]
    for folder in folders:
        if folder.exists() and not folder.is_dir():
            raise StorageError(f"{folder}: is a file, but the run directory keeps a folder there; "
                               "move the file away or choose another --out")
    for n in names:
        record = run_dir / "results" / f"{n}.json"
        if record.is_dir():
            raise StorageError(f"{record}: is a folder, but it is the results record of {n}; "
                               "remove it or choose another --out")
    _writable_ancestor(run_dir, "the run directory")
    if run_dir.is_dir() and not os.access(run_dir, os.W_OK | os.X_OK):
        raise StorageError(f"{run_dir}: permission denied (cannot write in the run directory); "
                           "make it writable or choose another --out")


def suite_problems(path: Path, suite: Any) -> list[str]:
    """Metric arguments, protocol–metric compatibility and output keys of every task (one line
    per problem; `diffbench.resolve.task_problems`)."""
    from diffbench.protocols import get_protocol
    from diffbench.registry import METRICS, PROTOCOLS
    from diffbench.resolve import task_problems

    problems = []
    for tname, task in suite.tasks.items():
        names = [task.protocol] + [m.protocol for m in task.metrics.values() if m.protocol]
        if any(m not in METRICS for m in task.metrics) or any(p not in PROTOCOLS for p in names):
            continue  # reported by the registry check
        problems += [f"{path}: tasks.{tname}.{line}"
                     for line in task_problems(task.metrics, task.protocol)]
        problems += _train_problems(f"{path}: tasks.{tname}", task)
        try:  # input settings the task's protocol does not have, or of the wrong type
            get_protocol(task.protocol).with_inputs(task.protocol_args)
        except ConfigError as exc:
            problems.append(f"{path}: tasks.{tname}.protocol_args: {exc}")
    return problems


def _train_problems(where: str, task: Any) -> list[str]:
    """A memorization metric without reference.train, or reference.train/test without one."""
    from diffbench.metrics.spec import NO_TRAIN, get_spec, unused_train

    memo = [m for m in task.metrics if get_spec(m).needs.train]
    ref = task.reference
    if memo and ref.train is None:
        return [f"{where}.metrics: {', '.join(memo)}{NO_TRAIN}"]
    if not memo and (ref.train is not None or ref.test is not None):
        return [f"{where}.reference: {unused_train('train/test')}"]
    return []


def check_run(points: list[Any], run_dir: Path, reference_of: Callable[[Any], Any], *,
              device: str, sweep: dict[str, list[Any]], scores: bool) -> None:
    """Everything `diffbench run`/`generate` can check before the first image or feature
    (image counts only when this invocation `scores`)."""
    from diffbench.data.base import check_key

    check_device(device)
    for name, values in sweep.items():
        check_name(name, "--sweep: name")
        for value in values:
            check_sweep_value(value, f"--sweep {name}")
    for p in points:
        check_name(p.task_name, "task name")
        for req in p.requests:
            check_key(req.key, f"task {p.name}: request")
    check_run_dir(Path(run_dir), [p.name for p in points])
    if not scores:
        return
    opened: dict[str, Any] = {}  # one reference per task, whatever the number of sweep points

    def reference(task_name: str, task: Any) -> Any:
        if task_name not in opened:
            opened[task_name] = reference_of(task)
        return opened[task_name]

    problems = []
    for p in points:
        problems += count_problems(p, lambda task, name=p.task_name: reference(name, task))
    _refuse(problems)


def count_problems(point: Any, reference_of: Callable[[Any], Any]) -> list[str]:
    """Sample-count problems of one point's distribution metrics (FID's bias is a warning)."""
    from diffbench.data.base import is_task_dataset
    from diffbench.resolve import resolve_task

    task = point.task
    resolved = resolve_task(task.metrics, task.protocol, protocol_args=task.protocol_args)
    metrics = [m for m in resolved.metrics.values() if m.spec.family == "distribution"]
    if not metrics:
        return []
    n_fake = len(point.requests) if point.task.kind == "generate" else _size(point.dataset)[0]
    real = reference_of(point.task)
    if real is None and is_task_dataset(point.dataset):
        real = point.dataset.reference_images()
    if real is None:
        return [f"task {point.name}: distribution metrics need a reference; add reference: "
                "{dataset: {name, reader}} or reference: {stats: NAME} to the task"]
    n_real, rows = _size(real)
    return [problem for m in metrics for problem in _metric_counts(
        f"task {point.name}: {m.name}", f"--set tasks.{point.task_name}.metrics.{m.name}.args.",
        m, n_real, n_fake, rows)]


def check_score_args(names: list[str], given: dict[str, dict], explicit: set[str],
                     protocol: Any) -> None:
    """`diffbench score`'s metric arguments (`explicit`: given with ``--metric-arg``, which must
    name a scored metric) and the output keys of `names`."""
    from diffbench.resolve import task_problems

    problems = [f"--metric-arg {m}: not among --metrics ({', '.join(names)})"
                for m in sorted(explicit - set(names))]
    problems += [p.replace("metrics.", "--metric-arg ", 1) for p in task_problems(
        {m: given.get(m, {}) for m in names}, protocol)]
    _refuse(problems)


def check_score(metrics: Iterable[Any], real: Any, fake: Any) -> None:
    """`diffbench score`: the sample counts of both sides against what the resolved `metrics`
    need."""
    n_real, rows = _size(real)
    n_fake, _ = _size(fake)
    _refuse([problem for m in metrics for problem in _metric_counts(
        m.name, f"--metric-arg {m.name}.", m, n_real, n_fake, rows)])


def _refuse(problems: list[str]) -> None:
    """The first problem as one line (with how many more there are)."""
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)


def _size(source: Any) -> tuple[int | None, set[str] | None]:
    """(number of images, layers with stored rows: None when images are read) of a side."""
    from diffbench import stats as stats_lib

    if isinstance(source, (str, Path)):
        path = Path(source)
        if stats_lib.is_stats_file(path):
            header, names = stats_lib.peek(path)
            return int(header.get("n", 0)), {n[len("feats_"):] for n in names
                                             if n.startswith("feats_")}
        from diffbench.data import open_images

        source = open_images(path)
    try:
        return len(source), None
    except TypeError:
        return None, None


def _metric_counts(where: str, fix: str, metric: Any, n_real: int | None, n_fake: int | None,
                   rows: set[str] | None) -> list[str]:
    """Problems of one resolved metric given the images per side (`fix` + ``setting=value``:
    how to set a setting)."""
    if n_real is None or n_fake is None:
        return []
    limit = metric.protocol.inputs.get("max_images")  # dgm-eval scores at most this many
    if limit is not None:
        n_real, n_fake = min(n_real, limit), min(n_fake, limit)
    spec = metric.spec
    low = min(n_real, n_fake)
    counts = f"there are {n_real} reference and {n_fake} generated images"
    extractor, _, layer = metric.feature()
    if rows is not None and spec.needs.form == "rows" and layer not in rows:
        return [f"{where} needs the reference's {layer} features, but its statistics file holds "
                "none; compute it with `diffbench stats compute ... --keep-features`"]
    if spec.needs.form == "moments":
        if low < 2:
            return [f"{where} needs at least 2 images per side; {counts}"]
        if spec.needs.covariance:
            _warn_rank(where, low, extractor, layer)
    shortfalls = spec.shortfalls(n_real, n_fake, metric.settings) \
        if spec.shortfalls is not None else []
    return [f"{where}{s.text}, but {counts}; lower it ({fix}{s.setting}={s.suggest}) or "
            f"{s.otherwise}" if s.setting else f"{where}{s.text}; {counts}" for s in shortfalls]


def _warn_rank(where: str, n: int, extractor: str, layer: str) -> None:
    """FID's bias warning, given before any image is read (the metric records the same)."""
    from diffbench.features import layer_dim
    from diffbench.metrics.distribution import rank_warning

    dim = layer_dim(extractor, layer)
    warning = rank_warning(n, dim) if dim is not None else None
    if warning:
        logger.warning("%s: %s", where, warning)
