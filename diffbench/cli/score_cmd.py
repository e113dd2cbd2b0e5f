"""`diffbench score` and `diffbench stats compute|show`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from diffbench import results
from diffbench import stats as stats_lib
from diffbench.cli.common import max_pixels_option
from diffbench.comparability import comparability
from diffbench.config import parse_pairs
from diffbench.data import open_images
from diffbench.extract import extract
from diffbench.features import build_extractor
from diffbench.preflight import check_device, check_output_file, check_score
from diffbench.protocols import get_protocol
from diffbench.scorer import parse_metrics, score

_PATH = click.Path(path_type=Path, readable=False)  # our own one-line errors say how to fix


def _extractor(protocol, weights: tuple[str, ...], device: str):
    return build_extractor(protocol.extractor, protocol.resize, parse_pairs(weights, "--weights"),
                           device)


def _table(metrics: dict) -> str:
    lines = []
    for name, m in metrics.items():
        extra = f" ± {m['std']:.6g}" if m.get("std") is not None else ""
        if m.get("ci"):
            extra += f"  (95% CI {m['ci']['low']:.6g} … {m['ci']['high']:.6g})"
        lines.append(f"{name:<10} {m['value']:.6g}{extra}")
    return "\n".join(lines)


@click.command("score")
@click.option("--real", required=True, type=_PATH, help="Reference: folder, ADM .npz or stats file.")
@click.option("--fake", required=True, type=_PATH, help="Generated: folder or ADM .npz.")
@click.option("--protocol", "protocol_name", default="torch-fidelity", show_default=True,
              help="adm | torch-fidelity | clean-fid (see `diffbench protocols`).")
@click.option("--metrics", default="fid", show_default=True, help="Comma list: fid,kid,isc,sfid,prc.")
@click.option("--weights", multiple=True, metavar="NAME=PATH", help="Use a local weights file.")
@click.option("--batch-size", default=50, show_default=True)
@click.option("--workers", type=int, default=None,
              help="Loader workers (default: CPU 0 on ≤2 cores else 1; GPU cores - 1, ≤8).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--bootstrap", default=0, show_default=True,
              help="Resamples for 95% confidence intervals of FID/sFID/IS (0: none).")
@click.option("--kid-subset-size", type=int, default=None, help="Override the protocol's KID subset size.")
@click.option("--kid-subsets", type=int, default=None, help="Override the protocol's KID subset count.")
@click.option("--prc-features", type=click.Choice(["pool3", "vgg16"]), default=None,
              help="Precision/recall features (default: the protocol's; torch-fidelity: vgg16).")
@click.option("--no-cache", is_flag=True, help="Do not read or write cached reference features.")
@click.option("--json", "json_out", type=_PATH, default=None,
              help="Write the results record to this file ('-': to stdout, the table to stderr).")
@max_pixels_option
def score_cmd(real, fake, protocol_name, metrics, weights, batch_size, workers, device, bootstrap,
              kid_subset_size, kid_subsets, prc_features, no_cache, json_out) -> None:
    """Score generated images against reference images under a named protocol.

    \b
    Examples:
      diffbench score --real ref/ --fake samples/ --protocol torch-fidelity --metrics fid,kid,isc
      diffbench score --real VIRTUAL_imagenet256_labeled.npz --fake samples.npz \\
          --protocol adm --metrics fid,sfid,isc,prc --json results.json
    """
    check_device(device)
    if json_out is not None:
        check_output_file(json_out, "--json")
    protocol = get_protocol(protocol_name)
    kid = {**protocol.kid, **({"subset_size": kid_subset_size} if kid_subset_size else {}),
           **({"subsets": kid_subsets} if kid_subsets else {})}
    protocol = dataclasses.replace(protocol, kid=kid)
    if prc_features:
        protocol = dataclasses.replace(protocol, prc={**protocol.prc, "features": prc_features})
    names = parse_metrics(metrics)
    protocol.check_metrics(names)
    check_score(protocol, names, real, fake)  # counts before any feature is extracted
    out = score(real, fake, protocol, names, parse_pairs(weights, "--weights"), device,
                batch_size, workers, bootstrap, cache=not no_cache)
    record = results.new_record(
        kind="score", protocol=protocol.name, protocol_settings=protocol.settings(),
        metrics=out["metrics"], counts=out["counts"], inputs=out["inputs"],
        extractors=out["extractors"], timings=out["timings"],
        environment=results.environment(device=device, dtype="fp32"))
    if str(json_out) == "-":  # the record alone on stdout, for pipes
        text = results.dumps(record, "--json -")
        click.echo(_table(out["metrics"]), err=True)
        click.echo(text, nl=False)
        return
    click.echo(_table(out["metrics"]))
    for reason in comparability(record).reasons:
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
@click.option("--protocol", "protocol_name", default="torch-fidelity", show_default=True)
@click.option("-o", "--output", required=True, type=_PATH, help="The .npz to write.")
@click.option("--keep-features", is_flag=True, help="Also store pool3 rows (for KID and PR).")
@click.option("--weights", multiple=True, metavar="NAME=PATH")
@click.option("--batch-size", default=50, show_default=True)
@click.option("--workers", type=int, default=None)
@click.option("--device", default="cpu", show_default=True)
@max_pixels_option
def compute_cmd(source, protocol_name, output, keep_features, weights, batch_size, workers,
                device) -> None:
    """Compute FID/sFID statistics (and optionally features) of SOURCE.

    \b
    Example:
      diffbench stats compute data/real/ --protocol adm -o real_stats.npz --keep-features
    """
    check_device(device)
    check_output_file(output, "-o")
    protocol = get_protocol(protocol_name)
    extractor = _extractor(protocol, weights, device)
    src = open_images(source)
    moments = tuple(sorted({protocol.layers[m] for m in ("fid", "sfid")
                            if m in protocol.metrics and m in protocol.layers}))
    rows = tuple(sorted({protocol.layers[m] for m in ("kid", "prc")
                         if m in protocol.metrics and m in protocol.layers}))
    fs = extract(src, extractor, moments, rows if keep_features else (), batch_size, workers,
                 desc=str(source))
    describe = {**src.describe(), "content_sha256": src.content_hash()}
    stats_lib.save(output, fs.moments, fs.banks, extractor.fingerprint(), protocol.name,
                   describe, fs.n)
    click.echo(f"wrote {output}: {fs.n} images, {fs.n / max(fs.seconds, 1e-9):.1f} images/s")


@stats.command("show")
@click.argument("stats_file", type=_PATH)
def show_cmd(stats_file) -> None:
    """Print a statistics file's header.

    \b
    Example:
      diffbench stats show real_stats.npz
    """
    st = stats_lib.load(stats_file)
    click.echo(json.dumps(st.header, indent=2, sort_keys=True))
    click.echo(f"layers: {', '.join(sorted(st.gaussians))}; rows: {', '.join(sorted(st.banks)) or '-'}")


COMMANDS = [score_cmd, stats]
