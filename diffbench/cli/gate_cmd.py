"""`diffbench gate RESULTS --baseline FILE` and `diffbench gate init RESULTS -o FILE`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from diffbench import gate as gate_lib
from diffbench import results
from diffbench.report.collect import collect


class _GateGroup(click.Group):
    """`gate RESULTS ...` runs the check; `gate init ...` writes a baseline."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["check", *args]
        return super().parse_args(ctx, args)


@click.group("gate", cls=_GateGroup)
def gate() -> None:
    """Fail a build when a metric regresses beyond its tolerance.

    Exit codes: 0 pass, 1 regression, 2 usage error, 3 not comparable (missing task or metric,
    other suite version, protocol, extractor fingerprint or sample count, a smoke run).

    \b
    Examples:
      diffbench gate runs/demo --baseline ci/baseline.yaml
      diffbench gate init runs/demo -o ci/baseline.yaml
    """


def _records(paths: tuple[Path, ...]) -> tuple[list[Path], list[dict]]:
    files = collect(paths)
    return files, [results.read(p) for p in files]


@gate.command("check")
@click.argument("results_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--baseline", "baseline_file", required=True, type=click.Path(path_type=Path),
              help="Baseline file written by `diffbench gate init` (YAML or JSON).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Also write the verdict as JSON here.")
def check(results_files: tuple[Path, ...], baseline_file: Path, json_out: Path | None) -> None:
    """Compare results (files or run folders, one record per task) with a baseline.

    Prints a Markdown table: metric | baseline | current | Δ | tolerance | status.

    \b
    Example:
      diffbench gate runs/demo --baseline ci/baseline.yaml --json gate.json
    """
    baseline = gate_lib.load_baseline(baseline_file)
    _, records = _records(results_files)
    verdict = gate_lib.gate(records, baseline)
    click.echo(gate_lib.markdown(verdict))
    if json_out:
        json_out.write_text(json.dumps(verdict.to_json(), indent=2) + "\n", encoding="utf-8")
    sys.exit(verdict.exit_code)


@gate.command("init")
@click.argument("results_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Where to write the baseline (.yaml or .json).")
def init(results_files: tuple[Path, ...], output: Path) -> None:
    """Write a baseline with default tolerances per metric, to review and commit.

    \b
    Example:
      diffbench gate init runs/demo -o ci/baseline.yaml
    """
    files, records = _records(results_files)
    source = " ".join(str(p) for p in results_files)
    path = gate_lib.write_baseline(gate_lib.init_baseline(records, source), output)
    metrics = sum(len(r["metrics"]) for r in records)
    click.echo(f"wrote {path}: {len(records)} task(s), {metrics} metrics from {len(files)} "
               "results file(s); review the tolerances")


COMMANDS = [gate]
