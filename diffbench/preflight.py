"""Checks that run before the first image or feature, so a run fails in seconds, not at the end.

- `suite_problems` (``suites validate`` and every command that loads a suite): each metric's
  arguments against its spec's schema (`diffbench.metrics.spec`), and whether the metric's
  protocol defines it, for every task.
- `check_run` (the start of ``diffbench run``/``generate``, after planning): device, sweep names
  and values, request keys, the run directory's layout and permissions, and the sample counts
  the distribution metrics need (each spec's ``shortfalls``: KID's subset size, IS splits,
  precision/recall's k; Fréchet distances' bias warning) from the planned images and the
  reference.
- `check_device`, `check_output_file`: for the other commands.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from diffbench.errors import ConfigError, DiffbenchError, StorageError
from diffbench.log import logger
from diffbench.names import check_name, check_sweep_value


def check_device(device: str) -> str:
    """`device` when torch can use it here, else a ConfigError saying what to do."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {device!r}: expected cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = torch.version.cuda or "none: a CPU-only build of torch"
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            seen = f", CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
            raise ConfigError(f"--device {device}: no usable CUDA GPU here (torch {torch.__version__}"
                              f", CUDA {build}{seen}); use --device cpu or run on a GPU machine")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"--device {device}: this machine has {count} CUDA device(s), "
                              f"cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"--device {device}: Apple MPS is not available here; use --device "
                              "cpu")
    elif dev.type != "cpu":
        raise ConfigError(f"--device {device!r}: expected cpu, cuda, cuda:N or mps")
    return device


def _writable_ancestor(path: Path, what: str) -> None:
    """Refuse a path that cannot be created: a file in the way, or a folder without write access."""
    probe = path
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
    _writable_ancestor(path.parent, f"the {option} file")


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
    """Metric arguments and protocol–metric compatibility of every task (one line per problem)."""
    from diffbench.metrics.args import check_args
    from diffbench.metrics.spec import get_spec
    from diffbench.registry import METRICS, PROTOCOLS

    problems = []
    for tname, task in suite.tasks.items():
        for mname, entry in task.metrics.items():
            where = f"{path}: tasks.{tname}.metrics.{mname}"
            proto_name = entry.protocol or task.protocol
            if mname not in METRICS or proto_name not in PROTOCOLS:
                continue  # reported by the registry check
            try:
                spec = get_spec(mname)
                protocol = _protocol(proto_name)
            except DiffbenchError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if mname not in protocol.metrics:
                problems.append(f"{where}: protocol '{proto_name}' does not define {mname} (it "
                                f"defines {', '.join(protocol.metrics)}); {_protocols_with(spec)}")
            problems += [f"{where}.args.{line}" for line in check_args(spec.args, entry.args)]
            if spec.conflicts is not None:
                problems += [f"{where}.args: {line}" for line in spec.conflicts(
                    protocol.metric_settings(mname), entry.args)]
    return problems


def _protocol(name: str):
    from diffbench.protocols import get_protocol

    return get_protocol(name)


def _protocols_with(spec: Any) -> str:
    found = spec.protocols()
    if not found:
        return "no protocol defines it"
    return (f"protocols that define it: {', '.join(found)} (set the task's protocol, or "
            f"metrics.{spec.name}.protocol)")


def check_run(points: list[Any], opts: Any, run_dir: Path,
              reference_of: Callable[[Any], Any]) -> None:
    """Everything `diffbench run`/`generate` can check before the first image or feature."""
    from diffbench.data.base import check_key

    check_device(opts.device)
    for name, values in opts.sweep.items():
        check_name(name, "--sweep: name")
        for value in values:
            check_sweep_value(value, f"--sweep {name}")
    for p in points:
        check_name(p.task_name, "task name")
        for req in p.requests:
            check_key(req.key, f"task {p.name}: request")
    check_run_dir(Path(run_dir), [p.name for p in points])
    if opts.generate_only or opts.shard is not None:
        return
    opened: dict[str, Any] = {}  # one reference per task, whatever the number of sweep points

    def reference(task_name: str, task: Any) -> Any:
        if task_name not in opened:
            opened[task_name] = reference_of(task)
        return opened[task_name]

    problems = []
    for p in points:
        problems += count_problems(p, lambda task, name=p.task_name: reference(name, task))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)


def _distribution_metrics(task: Any) -> list[tuple[str, Any]]:
    """(metric, protocol with the suite's arguments) of the task's distribution metrics."""
    from diffbench.metrics.spec import get_spec
    from diffbench.protocols import apply_metric_args

    out = []
    for name, entry in task.metrics.items():
        if get_spec(name).family != "distribution":
            continue
        protocol = _protocol(entry.protocol or task.protocol)
        out.append((name, apply_metric_args(protocol, {name: dict(entry.args)})))
    return out


def count_problems(point: Any, reference_of: Callable[[Any], Any]) -> list[str]:
    """Sample-count problems of one point's distribution metrics (FID's bias is a warning)."""
    from diffbench.data.base import is_task_dataset

    metrics = _distribution_metrics(point.task)
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
    problems = []
    for name, protocol in metrics:
        fix = f"--set tasks.{point.task_name}.metrics.{name}.args"
        problems += _metric_counts(f"task {point.name}: {name}", {
            "subset_size": f"{fix}.subset_size=", "splits": f"{fix}.splits="}, name, protocol,
            n_real, n_fake, rows)
    return problems


def check_score(protocol: Any, metrics: list[str], real: Any, fake: Any) -> None:
    """`diffbench score`: the sample counts of both sides against what the metrics need."""
    n_real, rows = _size(real)
    n_fake, _ = _size(fake)
    problems = []
    for name in metrics:
        problems += _metric_counts(name, {"subset_size": "--kid-subset-size "}, name, protocol,
                                   n_real, n_fake, rows)
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


def _metric_counts(where: str, fixes: dict[str, str], metric: str, protocol: Any,
                   n_real: int | None, n_fake: int | None, rows: set[str] | None) -> list[str]:
    """Problems of one metric given the images per side (`fixes`: how to set a setting)."""
    from diffbench.metrics.spec import get_spec
    from diffbench.scoring.distribution import feature_of, settings_of

    if n_real is None or n_fake is None:
        return []
    spec = get_spec(metric)
    low = min(n_real, n_fake)
    counts = f"there are {n_real} reference and {n_fake} generated images"
    _, _, layer = feature_of(spec, protocol)
    if rows is not None and spec.needs.form == "rows" and layer not in rows:
        return [f"{where} needs the reference's {layer} features, but its statistics file holds "
                "none; compute it with `diffbench stats compute ... --keep-features`"]
    if spec.needs.form == "moments":
        if low < 2:
            return [f"{where} needs at least 2 images per side; {counts}"]
        if spec.needs.covariance:
            _warn_rank(where, low, layer)
    shortfalls = spec.shortfalls(n_real, n_fake, settings_of(spec, protocol)) \
        if spec.shortfalls is not None else []
    out = []
    for short in shortfalls:
        if short.setting:
            hint = _hint(fixes, short.setting, short.suggest, short.otherwise)
            out.append(f"{where}{short.text}, but {counts}; {hint}")
        else:
            out.append(f"{where}{short.text}; {counts}")
    return out


def _warn_rank(where: str, n: int, layer: str) -> None:
    """FID's bias warning, given before any image is read (the metric records the same)."""
    from diffbench.features import LAYER_DIMS
    from diffbench.metrics.distribution import rank_warning

    warning = rank_warning(n, LAYER_DIMS[layer]) if layer in LAYER_DIMS else None
    if warning:
        logger.warning("%s: %s", where, warning)


def _hint(fixes: dict[str, str], setting: str, value: int, otherwise: str) -> str:
    if setting in fixes:
        return f"lower it ({fixes[setting]}{value}) or {otherwise}"
    return otherwise
