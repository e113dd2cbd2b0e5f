"""`diffbench score` and `diffbench stats compute|show`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from diffbench import api
from diffbench.cli.common import (
    LazyHelp,
    device_option,
    extract_batch_option,
    max_pixels_option,
    metric_arg_option,
    parse_metric_args,
    parse_model_args,
    protocol_arg_option,
    protocol_option,
    weights_option,
    workers_option,
)
from diffbench.config import parse_pairs

_PATH = click.Path(path_type=Path, readable=False)  # our own one-line errors say how to fix


def _scoreable() -> list:
    from diffbench.metrics.spec import all_specs

    return [s for s in all_specs() if s.family == "distribution" and not s.needs.labels]


def _metrics_help() -> str:
    return f"Comma list of: {', '.join(s.name for s in _scoreable())} (`diffbench metrics`)."


def _bootstrap_help() -> str:
    names = [o.label for s in _scoreable() if s.resample is not None for o in s.outputs[:1]]
    return f"Resamples for 95% confidence intervals of {'/'.join(names)} (0: none)."


@click.command("score")
@click.option("--real", required=True, type=_PATH, help="Reference: folder, ADM .npz or stats file.")
@click.option("--fake", required=True, type=_PATH, help="Generated: folder or ADM .npz.")
@click.option("--train", type=_PATH, default=None,
              help="The model's training images, for ct/fls (docs/memorization.md).")
@click.option("--test", type=_PATH, default=None,
              help="Held-out images for ct/fls (default: --real).")
@protocol_option()
@click.option("--metrics", default="fid", show_default=True, cls=LazyHelp,
              help_from=_metrics_help)
@weights_option
@extract_batch_option
@workers_option
@device_option
@click.option("--bootstrap", default=0, show_default=True, cls=LazyHelp,
              help_from=_bootstrap_help)
@metric_arg_option
@protocol_arg_option
@click.option("--kid-subset-size", type=int, default=None,
              help="Alias of --metric-arg kid.subset_size=N.")
@click.option("--kid-subsets", type=int, default=None, help="Alias of --metric-arg kid.subsets=N.")
@click.option("--prc-features", type=click.Choice(["pool3", "vgg16"]), default=None,
              help="Alias of --metric-arg prc.features=NAME.")
@click.option("--no-cache", is_flag=True, help="Do not read or write cached reference features.")
@click.option("--json", "json_out", type=_PATH, default=None,
              help="Write the results record to this file ('-': to stdout, the table to stderr).")
@click.option("--allow-partial", is_flag=True,
              help="Score a sample store that a run is still writing (the images there now).")
@max_pixels_option
def score_cmd(real, fake, train, test, protocol_name, metrics, weights, batch_size, workers,
              device, bootstrap, metric_args, protocol_args, kid_subset_size, kid_subsets,
              prc_features, no_cache, json_out, allow_partial) -> None:
    """Score generated images against reference images under a named protocol.

    \b
    Examples:
      diffbench score --real ref/ --fake samples/ --protocol torch-fidelity --metrics fid,kid,isc
      diffbench score --real VIRTUAL_imagenet256_labeled.npz --fake samples.npz \\
          --protocol adm --metrics fid,sfid,isc,prc --json results.json
    """
    from diffbench import results
    from diffbench.comparability import comparability
    from diffbench.display import metric_lines
    from diffbench.preflight import check_output_file

    if json_out is not None:
        check_output_file(json_out, "--json")
    record = api.score(real, fake, metrics, protocol_name, parse_pairs(weights, "--weights"),
                       device, batch_size, workers, bootstrap, cache=not no_cache,
                       metric_args=parse_metric_args(metric_args),
                       kid_subset_size=kid_subset_size, kid_subsets=kid_subsets,
                       prc_features=prc_features, allow_partial=allow_partial, train=train,
                       test=test, protocol_args=parse_model_args(protocol_args, "--protocol-arg",
                                                                 "clean_resize=true"))
    table = "\n".join(metric_lines(record["metrics"]))
    if str(json_out) == "-":  # the record alone on stdout, for pipes
        text = results.dumps(record, "--json -")
        click.echo(table, err=True)
        click.echo(text, nl=False)
        return
    click.echo(table)
    for reason in comparability(record).all_reasons():
        click.echo(f"diffbench: warning: not comparable to published numbers: {reason}", err=True)
    if json_out:
        results.write(record, json_out)
        click.echo(f"wrote {json_out}")


@click.group("stats")
def stats() -> None:
    """Reference statistics files: compute once, reuse, refuse mismatched extractors.

    \b
    Examples:
      diffbench stats compute data/real/ --protocol torch-fidelity -o real_stats.npz
      diffbench stats show real_stats.npz
    """


@stats.command("compute")
@click.argument("source", type=_PATH)
@protocol_option()
@click.option("-o", "--output", required=True, type=_PATH, help="The .npz to write.")
@click.option("--keep-features", is_flag=True,
              help="Also store the feature rows KID and precision/recall read.")
@weights_option
@extract_batch_option
@workers_option
@device_option
@max_pixels_option
def compute_cmd(source, protocol_name, output, keep_features, weights, batch_size, workers,
                device) -> None:
    """Compute FID/sFID statistics (and optionally features) of SOURCE.

    \b
    Example:
      diffbench stats compute data/real/ --protocol adm -o real_stats.npz --keep-features
    """
    from diffbench.preflight import check_output_file

    check_output_file(output, "-o")
    done = api.compute_stats(source, output, protocol_name, keep_features,
                             parse_pairs(weights, "--weights"), device, batch_size, workers)
    click.echo(f"wrote {output}: {done['n']} images, "
               f"{done['n'] / max(done['seconds'], 1e-9):.1f} images/s")


@stats.command("show")
@click.argument("stats_file", type=_PATH)
def show_cmd(stats_file) -> None:
    """Print a statistics file's header.

    \b
    Example:
      diffbench stats show real_stats.npz
    """
    from diffbench import stats as stats_lib

    st = stats_lib.load(stats_file)
    click.echo(json.dumps(st.header, indent=2, sort_keys=True))
    click.echo(f"layers: {', '.join(sorted(st.gaussians))}; rows: {', '.join(sorted(st.banks)) or '-'}")


COMMANDS = [score_cmd, stats]
