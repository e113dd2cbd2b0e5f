"""`diffbench generate`, `diffbench merge` and `diffbench export-npz`."""

from __future__ import annotations

from pathlib import Path

import click

from diffbench.cli.common import (
    device_option,
    dtype_option,
    include_path_option,
    model_option,
    parse_model_args,
)
from diffbench.config import parse_pairs
from diffbench.errors import ConfigError


@click.command("generate")
@click.argument("suite")
@model_option(required=True)
@click.option("--model-arg", "model_args", multiple=True, metavar="K=V",
              help="Adapter constructor argument (value parsed as YAML); repeatable.")
@click.option("--task", "tasks", multiple=True, help="Only these tasks (default: all generate tasks).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory (default runs/<suite>/<model>).")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1),
              help="Images per generation batch (per process).")
@device_option
@dtype_option
@click.option("--tf32/--no-tf32", default=False, show_default=True, help="Allow TF32 matmuls.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only N images of each task, spread over its conditions (smoke test).")
@click.option("--shard", default=None, metavar="i/N", help="Job-array shard, e.g. 0/4.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a suite value; repeatable.")
@click.option("--data", multiple=True, metavar="NAME=PATH", help="Where a dataset lives.")
@click.option("--sweep", multiple=True, metavar="NAME=v1,v2,...",
              help="Generate each task once per value of a sampler argument.")
@click.option("--fresh", is_flag=True,
              help="Discard the tasks' stored images first (a store made by another model or "
                   "other settings is otherwise refused).")
@include_path_option
def generate_cmd(suite: str, model: str, model_args: tuple[str, ...], tasks: tuple[str, ...],
                 out: Path | None, batch_size: int, device: str, dtype: str, tf32: bool,
                 limit: int | None, shard: str | None, overrides: tuple[str, ...],
                 data: tuple[str, ...], sweep: tuple[str, ...], fresh: bool,
                 include: list[Path]) -> None:
    """Generate the images of a suite's tasks into RUN_DIR/samples/<task>/ (resumable).

    SUITE is a suite file or a suite name (`diffbench suites list`).

    \b
    Examples:
      diffbench generate imagenet256 --model toy --out runs/toy --limit 64
      torchrun --nproc-per-node 8 -m diffbench generate imagenet256 --model sit-repa
      diffbench generate imagenet256 --model toy --shard 0/4 --out runs/toy
    """
    from diffbench import api, dist
    from diffbench.results import RunLayout
    from diffbench.runner import parse_sweep

    done = api.generate(suite, model, parse_model_args(model_args), out, overrides=overrides,
                        include=include, tasks=tasks, device=device, dtype=dtype, tf32=tf32,
                        batch_size=batch_size, limit=limit, data=parse_pairs(data, "--data"),
                        sweep=parse_sweep(sweep),
                        shard=dist.parse_shard(shard) if shard else None, fresh=fresh)
    for o in done.outcomes:
        rep = o.generation
        smoke = " (smoke: --limit)" if rep.smoke else ""
        sample_dir = RunLayout(done.run_dir).samples(o.point.name)
        click.echo(f"{o.point.name}: part {rep.part}/{rep.parts}: planned {rep.planned}, skipped "
                   f"{rep.skipped}, generated {rep.made_now} in {rep.seconds:.1f} s "
                   f"({rep.images_per_s:.1f} images/s){smoke} -> {sample_dir}")
    if shard is not None:
        click.echo(f"shard {shard}: done; when all shards are, run: diffbench merge "
                   f"{done.run_dir}")


@click.command("merge")
@click.argument("run_dirs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
def merge_cmd(run_dirs: tuple[Path, ...]) -> None:
    """Merge per-rank/shard manifests into manifest.jsonl; check no key is missing or duplicated.

    \b
    Example:
      diffbench merge runs/toy
    """
    from diffbench.generate import merge_manifests, sample_dirs

    for run_dir in run_dirs:
        dirs = sample_dirs(run_dir)
        if not dirs:
            raise ConfigError(f"{run_dir}: no samples/<task>/plan.json; is it a run directory?")
        for sample_dir in dirs:
            records = merge_manifests(sample_dir)
            click.echo(f"{sample_dir}: {len(records)} images, manifest.jsonl written")


@click.command("export-npz")
@click.argument("sample_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The .npz file to write (arr_0: N×H×W×3 uint8).")
@click.option("--allow-partial", is_flag=True,
              help="Export the good images of an incomplete store instead of refusing it.")
def export_npz_cmd(sample_dir: Path, output: Path, allow_partial: bool) -> None:
    """Write a task's stored images as an ADM-evaluator npz: arr_0 uint8 N×H×W×3.

    Exports the keys of the store's manifest.jsonl, in its order, each only when its PNG matches
    the recorded sha256; other files in the folder are never exported. An incomplete store is
    refused unless --allow-partial. Streams one image at a time; the file is N·H·W·3 bytes.

    \b
    Example:
      diffbench export-npz runs/toy/samples/repa-sde-cfg -o samples.npz
    """
    from diffbench.export import export_npz

    done = export_npz(sample_dir, output, allow_partial=allow_partial)
    (h, w), partial = done.size, ""
    if done.left_out:
        partial = (f" (partial: {done.n} of {done.planned} planned images; left out "
                   f"{len(done.left_out)}, first: {done.left_out[0]})")
    click.echo(f"{output}: arr_0 {done.n}x{h}x{w}x3 uint8{partial}")


COMMANDS = [generate_cmd, merge_cmd, export_npz_cmd]
