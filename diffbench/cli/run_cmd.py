"""`diffbench run`: generate, score and record every task of a suite."""

from __future__ import annotations

from pathlib import Path

import click

from diffbench.cli.common import (
    device_option,
    dtype_option,
    include_path_option,
    max_pixels_option,
    metric_arg_option,
    model_option,
    parse_metric_args,
    parse_model_args,
    protocol_arg_option,
    weights_option,
    workers_option,
)
from diffbench.config import parse_pairs


def summary(outcome) -> str:
    """A few lines per point: metrics, counts, where the record is."""
    from diffbench.display import metric_lines

    rec = outcome.record
    state = "up to date, not rescored" if outcome.reused else f"-> {outcome.path}"
    lines = [f"{outcome.point.name} [{rec['protocol']['name']}] {state}",
             *metric_lines(rec["metrics"], indent="  ")]
    rep = outcome.generation
    if rep is not None:
        rate = f" ({rep.images_per_s:.1f} images/s)" if rep.made_now else ""
        lines.append(f"  images: planned {rep.planned}, generated {rep.made_now}, already there "
                     f"{rep.skipped}{rate}")
    return "\n".join(lines)


@click.command("run")
@click.argument("suite")
@model_option()
@click.option("--model-arg", "model_args", multiple=True, metavar="K=V",
              help="Adapter argument (value read as YAML); repeatable.")
@click.option("--task", "tasks", multiple=True, help="Only these tasks (default: all).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory (default runs/<suite>/<model>).")
@click.option("--data", multiple=True, metavar="NAME=PATH", help="Where a dataset lives.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a suite value for this run (recorded); repeatable.")
@metric_arg_option
@protocol_arg_option
@weights_option
@click.option("--sweep", multiple=True, metavar="NAME=v1,v2,...",
              help="Run each task once per value of a sampler argument (Pareto fronts).")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1),
              help="Images per generation batch (per process).")
@click.option("--score-batch-size", default=50, show_default=True, type=click.IntRange(min=1),
              help="Images per feature-extractor batch while scoring.")
@workers_option
@device_option
@dtype_option
@click.option("--tf32/--no-tf32", default=False, show_default=True, help="Allow TF32 on CUDA.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only N images of each task, spread over its conditions (round-robin over "
                   "classes, prompts, pairs): a smoke run, marked as such.")
@click.option("--bootstrap", default=0, show_default=True, type=click.IntRange(min=0),
              help="Resamples for 95% confidence intervals (0: none).")
@click.option("--no-cache", is_flag=True, help="Do not read or write cached reference features.")
@click.option("--rescore", is_flag=True, help="Score again even if the images did not change.")
@click.option("--fresh", is_flag=True,
              help="Discard the tasks' stored images first (a store made by another model or "
                   "other settings is otherwise refused).")
@include_path_option
@max_pixels_option
def run_cmd(suite, model, model_args, tasks, out, data, overrides, metric_args, protocol_args,
            weights, sweep,
            batch_size, score_batch_size, workers, device, dtype, tf32, limit, bootstrap,
            no_cache, rescore, fresh, include) -> None:
    """Generate the images of a suite's tasks, score them and write results/<task>.json.

    SUITE is a suite file, or the name of a suite in an include path or shipped with diffbench
    (`diffbench suites list`). Rerunning the same command resumes: existing images are kept,
    missing ones generated, unchanged points not rescored. A store made by another model or
    with other settings is refused (use another --out, or --fresh); one run at a time writes
    into a run directory.

    \b
    Examples:
      diffbench run demo --model demo-sit
      diffbench run suites/demo.yaml --model toy --limit 100
      diffbench run vitonhd --model idm-vton --model-arg repo=~/IDM-VTON
      diffbench run imagenet256 --model sit-repa --model-arg ckpt=last.pt \\
          --data imagenet256-ref=VIRTUAL_imagenet256_labeled.npz --device cuda --dtype bf16
      torchrun --nproc-per-node 8 -m diffbench run imagenet256 --model sit-repa ...
      diffbench run dreambooth --model dco --sweep rg_scale=0,1,2,3
      diffbench run my_suite --include-path my_suites/ --model toy
    """
    from diffbench import api, dist
    from diffbench.comparability import comparability
    from diffbench.runner import parse_sweep

    done = api.execute(suite, model, parse_model_args(model_args), out, overrides=overrides,
                       metric_args=parse_metric_args(metric_args),
                       protocol_args=parse_model_args(protocol_args, "--protocol-arg",
                                                      "clean_resize=true"),
                       include=include, tasks=tasks, device=device, dtype=dtype, tf32=tf32,
                       batch_size=batch_size, score_batch_size=score_batch_size,
                       workers=workers, limit=limit, bootstrap=bootstrap,
                       weights=parse_pairs(weights, "--weights"), data=parse_pairs(data, "--data"),
                       sweep=parse_sweep(sweep), cache=not no_cache, rescore=rescore, fresh=fresh)
    if dist.is_main():
        for o in done.outcomes:
            click.echo(summary(o))
            if o.record is not None:
                for reason in comparability(o.record).all_reasons():
                    click.echo(f"diffbench: warning: {o.point.name}: not comparable to published "
                               f"numbers: {reason}", err=True)
        click.echo(f"run directory: {done.run_dir}")

COMMANDS = [run_cmd]
