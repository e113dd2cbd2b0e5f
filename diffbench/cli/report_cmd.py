"""`diffbench report RESULTS... -o DIR`."""

from __future__ import annotations

from pathlib import Path

import click

from diffbench.cli.common import include_path_option


@click.command("report")
@click.argument("results_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("reports"), show_default=True, help="Folder for the report files.")
@click.option("--published/--no-published", default=True, show_default=True,
              help="Add the published rows (shipped and in the include paths) of the same "
                   "suites, protocols and tasks.")
@click.option("--published-from", "extra_published", multiple=True,
              type=click.Path(exists=True, path_type=Path),
              help="Also add published rows from this YAML file or folder (repeatable).")
@click.option("--title", default="diffbench report", show_default=True,
              help="The title of index.html and report.md.")
@include_path_option
def report(results_files: tuple[Path, ...], out_dir: Path, published: bool,
           extra_published: tuple[Path, ...], title: str, include: list[Path]) -> None:
    """Write report.csv, report.md, index.html and Pareto plots from results files.

    RESULTS_FILES are results JSON files or run folders. Rows of different protocols are never
    put in one table; rows not comparable to published numbers (unofficial weights, --limit
    runs, fewer images than the task asks, changed protocol settings, biased FID) are listed
    apart with the reason (CSV: `comparable`, `reason`). index.html is one self-contained page
    (version, time, weights per protocol, leaderboards, Pareto plots of sweeps, sample
    thumbnails) that works offline.

    \b
    Example:
      diffbench report runs/demo runs/other/results.json -o reports/
    """
    from diffbench.report.build import build_report

    files = build_report(list(results_files), out_dir, published, title, extra_published,
                         include)
    click.echo(f"{files.rows} rows -> {files.csv}, {files.markdown}, {files.html}")
    if files.plots:
        click.echo(f"Pareto plots: {', '.join(str(p) for p in files.plots)}")


COMMANDS = [report]
