"""`diffbench weights list|fetch|import|verify`."""

from __future__ import annotations

from pathlib import Path

import click

from diffbench import weights as w


@click.group("weights")
def weights() -> None:
    """Manage network weights: list, download, import (offline clusters), verify.

    \b
    Examples:
      diffbench weights list
      diffbench weights fetch inception-2015-12-05
      diffbench weights import inception-2015-12-05 /mnt/weights-inception-2015-12-05-6726825d.pth
      diffbench weights verify
    """


@weights.command("list")
def list_cmd() -> None:
    """List known weights, whether they are present, their checksum and licence.

    \b
    Example:
      diffbench weights list
    """
    for name, s in sorted(w.WEIGHTS.items()):
        where = w.locate(name)
        digest = s.sha256[:12] + "…" if s.sha256 else f"prefix {s.sha256_prefix}"
        click.echo(f"{name:<34} {'present' if where else 'missing':<8} {digest:<20} {s.licence}")
        click.echo(f"{'':<34} {where or s.url}")


@weights.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Download again even if present.")
def fetch_cmd(names: tuple[str, ...], force: bool) -> None:
    """Download weights (resuming partial downloads) and verify them.

    \b
    Example:
      diffbench weights fetch inception-2015-12-05
    """
    for name in names:
        click.echo(f"{name}: {w.fetch(name, force=force)}")


@weights.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path))
def import_cmd(name: str, file: Path) -> None:
    """Verify FILE (copied from elsewhere) as weights NAME and store it.

    \b
    Example:
      diffbench weights import inception-2015-12-05 ./weights-inception-2015-12-05-6726825d.pth
    """
    click.echo(f"{name}: {w.import_file(name, file)}")


@weights.command("verify")
@click.argument("names", nargs=-1)
def verify_cmd(names: tuple[str, ...]) -> None:
    """Check the checksum of present weights (all known ones by default).

    \b
    Example:
      diffbench weights verify inception-2015-12-05
    """
    for name in names or sorted(w.WEIGHTS):
        path = w.locate(name)
        if path is None:
            if names:
                raise w.WeightsError(f"weights '{name}' are not present; run `diffbench weights "
                                     f"fetch {name}`")
            continue
        w.check(w.spec(name), path)
        click.echo(f"{name}: ok ({path})")


COMMANDS = [weights]
