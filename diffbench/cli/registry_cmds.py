"""`diffbench models`, `diffbench metrics`, `diffbench datasets`, `diffbench protocols`."""

from __future__ import annotations

import click

from diffbench.errors import RegistryError
from diffbench.registry import ADAPTERS, DATASETS, METRICS, PROTOCOLS, Registry


def _print_registry(registry: Registry, verbose: bool) -> None:
    names = registry.names()
    if not names:
        click.echo(f"(no {registry.kind}s registered yet)")
        return
    for name in names:
        try:
            desc = registry.describe(name)
        except RegistryError as exc:
            click.echo(f"{name:<18} BROKEN: {exc}")
            continue
        origin = "" if desc.source == "builtin" else f"  [{desc.source}]"
        click.echo(f"{name:<18} {desc.summary}{origin}")
        if verbose or desc.arguments:
            args = ", ".join(desc.arguments) if desc.arguments else "(none)"
            click.echo(f"{'':<18}   arguments: {args}")


def _command(registry: Registry, cmd_name: str, example: str):
    @click.command(cmd_name, help=f"List the registered {registry.kind}s (built-in and plugins)."
                   f"\n\n\b\nExample:\n  {example}")
    @click.option("--verbose", is_flag=True, help="Show arguments even when there are none.")
    def command(verbose: bool) -> None:
        _print_registry(registry, verbose)

    return command


COMMANDS = [
    _command(ADAPTERS, "models", "diffbench models"),
    _command(METRICS, "metrics", "diffbench metrics"),
    _command(DATASETS, "datasets", "diffbench datasets"),
    _command(PROTOCOLS, "protocols", "diffbench protocols"),
]
