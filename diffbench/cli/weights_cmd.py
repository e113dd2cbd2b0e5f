"""`diffbench weights list|fetch|import|verify`."""

from __future__ import annotations

import json

import click

from diffbench import weights as w
from diffbench.cli.common import add_fetch_import


@click.group("weights")
def weights() -> None:
    """Manage network weights: list, download, import (offline clusters), verify.

    \b
    Examples:
      diffbench weights list
      diffbench weights fetch inception-2015-12-05
      diffbench weights import inception-2015-12-05 ./weights-inception-2015-12-05-6726825d.pth
      diffbench weights verify
    """


@weights.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def list_cmd(as_json: bool) -> None:
    """List known weights: present or not, checksum, licence, then where (or the URL).

    SHA256 is the first 8 hex digits of the known digest; CHECK says what a file is checked
    against: `sha256` (the full digest), `prefix` (only the published prefix of the digest) or
    `none` (nothing published: the file's own sha256 goes into the results).

    \b
    Examples:
      diffbench weights list
      diffbench weights list --json
    """
    rows = w.list_weights()
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    click.echo(f"{'NAME':<34} {'STATE':<8} {'SHA256':<9} {'CHECK':<7} LICENCE")
    for r in rows:
        digest = (r["sha256"] or "-")[:8]
        state = "present" if r["where"] else "missing"
        click.echo(f"{r['name']:<34} {state:<8} {digest:<9} {r['check']:<7} {r['licence']}")
        click.echo(f"{'':<34} {r['where'] or r['url']}")


add_fetch_import(
    weights, "diffbench.weights",
    """Download weights (resuming partial downloads) and verify them.

    \b
    Example:
      diffbench weights fetch inception-2015-12-05
    """,
    """Verify FILE (copied from elsewhere) as weights NAME and store it.

    \b
    Example:
      diffbench weights import inception-2015-12-05 ./weights-inception-2015-12-05-6726825d.pth
    """)


@weights.command("verify")
@click.argument("targets", nargs=-1)
def verify_cmd(targets: tuple[str, ...]) -> None:
    """Check the checksum of weights by NAME or FILE (all present known ones by default).

    \b
    Example:
      diffbench weights verify inception-2015-12-05
      diffbench weights verify ./weights-inception-2015-12-05-6726825d.pth
    """
    for target in targets or [n for n in sorted(w.WEIGHTS) if w.locate(n)]:
        click.echo(f"{target}: ok ({w.verify(target)})")


COMMANDS = [weights]
