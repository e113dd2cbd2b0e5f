"""`diffbench generate`, `diffbench merge` and `diffbench export-npz`."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from diffbench import dist
from diffbench.errors import ConfigError
from diffbench.generate import export_npz, generate, merge_manifests
from diffbench.registry import ADAPTERS
from diffbench.requests import request_sampler, task_requests
from diffbench.suite import load_suite


def _model_args(items: tuple[str, ...]) -> dict:
    args = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model-arg '{item}': expected KEY=VALUE, e.g. path=/data/samples")
        args[key] = yaml.safe_load(value)
    return args


def _build_adapter(model: str, args: dict, device: str, dtype: str):
    cls = ADAPTERS.get(model)
    try:
        return cls(device=device, dtype=dtype, **args)
    except TypeError as exc:
        raise ConfigError(f"--model {model}: bad --model-arg ({exc}); see "
                          f"`diffbench adapters` for its arguments") from None


@click.command("generate")
@click.argument("suite", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", required=True, help="Adapter name from the registry, e.g. toy.")
@click.option("--model-arg", "model_args", multiple=True, metavar="K=V",
              help="Adapter constructor argument (value parsed as YAML); repeatable.")
@click.option("--task", "tasks", multiple=True, help="Only these tasks (default: all generate tasks).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory (default runs/<suite>/<model>).")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32",
              show_default=True)
@click.option("--tf32/--no-tf32", default=False, show_default=True, help="Allow TF32 matmuls.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N keys of each task (smoke test).")
@click.option("--shard", default=None, metavar="i/N", help="Job-array shard, e.g. 0/4.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a suite value; repeatable.")
def generate_cmd(suite: Path, model: str, model_args: tuple[str, ...], tasks: tuple[str, ...],
                 out: Path | None, batch_size: int, device: str, dtype: str, tf32: bool,
                 limit: int | None, shard: str | None, overrides: tuple[str, ...]) -> None:
    """Generate the images of a suite's tasks into RUN_DIR/samples/<task>/ (resumable).

    \b
    Examples:
      diffbench generate suites/imagenet256.yaml --model toy --out runs/toy --limit 64
      torchrun --nproc-per-node 8 -m diffbench generate suites/imagenet256.yaml --model sit-repa
      diffbench generate suites/imagenet256.yaml --model toy --shard 0/4 --out runs/toy
    """
    import torch

    loaded = load_suite(suite, list(overrides))
    shard_t = dist.parse_shard(shard) if shard else None
    names = list(tasks) or [n for n, t in loaded.suite.tasks.items() if t.kind == "generate"]
    unknown = [n for n in names if n not in loaded.suite.tasks]
    if unknown:
        raise ConfigError(f"--task {unknown[0]}: not in {suite} (tasks: "
                          f"{', '.join(loaded.suite.tasks)})")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    adapter = _build_adapter(model, _model_args(model_args), device, dtype)
    plans = []
    for name in names:  # every check before the first image is written
        task = loaded.suite.tasks[name]
        adapter.check_task(task.condition, request_sampler(task), f"{suite}: task {name}")
        reqs = task_requests(task)[:limit] if limit else task_requests(task)
        if hasattr(adapter, "check_keys"):
            adapter.check_keys([r.key for r in reqs])
        plans.append((name, reqs))
    run_dir = out or Path("runs") / loaded.suite.name / model
    dist.init_from_env(device)
    rank, world = dist.rank(), dist.world_size()
    for name, reqs in plans:
        sample_dir = run_dir / "samples" / name
        rep = generate(adapter, reqs, sample_dir, batch_size, rank=rank, world_size=world,
                       shard=shard_t, limit=limit)
        dist.barrier()
        if shard_t is None and dist.is_main():
            merge_manifests(sample_dir)
        smoke = " (smoke: --limit)" if rep.smoke else ""
        click.echo(f"{name}: part {rep.part}/{rep.parts}: planned {rep.planned}, skipped "
                   f"{rep.skipped}, generated {rep.generated} in {rep.seconds:.1f} s "
                   f"({rep.images_per_s:.1f} images/s){smoke} -> {sample_dir}")
    if shard_t is not None:
        click.echo(f"shard {shard}: done; when all shards are, run: diffbench merge {run_dir}")


def _sample_dirs(path: Path) -> list[Path]:
    if (path / "plan.json").exists() or any(path.glob("manifest.rank*.jsonl")):
        return [path]
    return sorted(p.parent for p in path.glob("samples/*/plan.json"))


@click.command("merge")
@click.argument("run_dirs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
def merge_cmd(run_dirs: tuple[Path, ...]) -> None:
    """Merge per-rank/shard manifests into manifest.jsonl; check no key is missing or duplicated.

    \b
    Example:
      diffbench merge runs/toy
    """
    for run_dir in run_dirs:
        dirs = _sample_dirs(run_dir)
        if not dirs:
            raise ConfigError(f"{run_dir}: no samples/<task>/plan.json; is it a run directory?")
        for sample_dir in dirs:
            records = merge_manifests(sample_dir)
            click.echo(f"{sample_dir}: {len(records)} images, manifest.jsonl written")


@click.command("export-npz")
@click.argument("sample_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
def export_npz_cmd(sample_dir: Path, output: Path) -> None:
    """Write a task's PNGs (sorted by key) as an ADM-evaluator npz: arr_0 uint8 N×H×W×3.

    Streams one image at a time (memory: one image); the file is N·H·W·3 bytes.

    \b
    Example:
      diffbench export-npz runs/toy/samples/repa-sde-cfg -o samples.npz
    """
    n, (h, w) = export_npz(sample_dir, output)
    click.echo(f"{output}: arr_0 {n}x{h}x{w}x3 uint8")


COMMANDS = [generate_cmd, merge_cmd, export_npz_cmd]
