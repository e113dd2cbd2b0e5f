"""`diffbench data list|fetch|import|verify`."""

from __future__ import annotations

import json

import click

from diffbench.cli.common import add_fetch_import
from diffbench.config import parse_pairs


@click.group("data")
def data() -> None:
    """Reference data by name: list, download, import (offline clusters), verify.

    Suites name their datasets (imagenet256-ref, vitonhd, ...). ADM's reference batches are
    downloaded into the data home ($DIFFBENCH_HOME/data) and checked; datasets whose licences
    forbid redistribution (VITON-HD, DressCode, DreamBench) are listed with where to get them
    and the layout diffbench expects, never downloaded.

    \b
    Examples:
      diffbench data list
      diffbench data fetch imagenet256-ref
      diffbench data import imagenet256-ref ./VIRTUAL_imagenet256_labeled.npz
      diffbench data verify imagenet256-ref
    """


@data.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def list_cmd(as_json: bool) -> None:
    """List the known datasets: fetchable ones with their state and checksum, licensed ones
    with where to get them and the expected layout ([optional] parts in brackets).

    \b
    Examples:
      diffbench data list
      diffbench data list --json
    """
    from diffbench import refdata

    rows = refdata.list_data()
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    click.echo(f"{'NAME':<18} {'KIND':<9} {'STATE':<8} {'SHA256':<9} DESCRIPTION")
    for r in rows:
        fetch = r["kind"] == "fetch"
        state = ("present" if r["where"] else "missing") if fetch else "-"
        digest = str(r["sha256"] or "-")[:8] if fetch else "-"
        click.echo(f"{r['name']:<18} {r['kind']:<9} {state:<8} {digest:<9} {r['description']}")
        more = [r["where"] or r["url"]] if fetch else [
            f"get it: {r['get']}", f"layout: {r['layout']}",
            f"then: diffbench config set data.{r['name']} PATH"]
        for line in (f"licence: {r['licence']}", *more):
            click.echo(" " * 19 + line)


add_fetch_import(
    data, "diffbench.refdata",
    """Download reference files (resuming partial downloads) and check them.

    \b
    Example:
      diffbench data fetch imagenet256-ref imagenet512-ref
    """,
    """Check FILE (copied from elsewhere) as dataset NAME and store it in the data home.

    \b
    Example:
      diffbench data import imagenet256-ref ./VIRTUAL_imagenet256_labeled.npz
    """)


@data.command("verify")
@click.argument("names", nargs=-1)
@click.option("--data", "locations", multiple=True, metavar="NAME=PATH",
              help="Where a dataset lives (as for `run`).")
def verify_cmd(names: tuple[str, ...], locations: tuple[str, ...]) -> None:
    """Check datasets where diffbench finds them (--data, environment, config, data home):
    a file's sha256, a licensed dataset's layout. Default: every dataset it can find.

    \b
    Examples:
      diffbench data verify imagenet256-ref
      diffbench data verify vitonhd --data vitonhd=zalando-hd-resized/
    """
    from diffbench import refdata

    given = parse_pairs(locations, "--data")
    for name in names:
        refdata.spec(name)
    for name in names or sorted(refdata.DATASETS):
        found = refdata.resolve_data(name, given) if names else refdata.where(name, given)
        if found is not None:
            path, source = found
            click.echo(f"{name}: {refdata.verify(name, path)} ({path}, from {source})")


COMMANDS = [data]
