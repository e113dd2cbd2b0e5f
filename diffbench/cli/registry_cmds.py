"""`diffbench models`, `diffbench metrics`, `diffbench datasets`, `diffbench protocols`."""

from __future__ import annotations

import click

from diffbench.registry import ADAPTERS, DATASETS, METRICS, PROTOCOLS, Registry


def _print_registry(registry: Registry, verbose: bool) -> None:
    from diffbench.errors import RegistryError

    names = registry.ordered_names() if registry is METRICS else registry.names()
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
        if registry is METRICS:
            _metric_facts(registry.get(name))
        if verbose or desc.arguments:
            args = ", ".join(desc.arguments) if desc.arguments else "(none)"
            click.echo(f"{'':<18}   arguments: {args}")


def _metric_facts(spec) -> None:
    """A metric's family, outputs (label, direction, gate tolerance) and defining protocols."""
    from diffbench.display import arrow

    outputs = ", ".join(
        f"{o.key} ({o.label} {arrow(o.higher_is_better)}, gate "
        f"{' or '.join(f'{k} {v:g}' for k, v in o.tolerance.items())})" for o in spec.outputs)
    click.echo(f"{'':<18}   family: {spec.family}; outputs: {outputs}")
    click.echo(f"{'':<18}   protocols: {', '.join(spec.protocols()) or '(none registered)'}")


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
