"""`diffbench suites list|show|validate`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from diffbench.cli.common import include_path_option
from diffbench.resources import suites as found_suites
from diffbench.suite import load_suite, suite_problems


@click.group("suites")
def suites() -> None:
    """List, show and validate benchmark suites (YAML files, or names of shipped suites).

    \b
    Examples:
      diffbench suites list
      diffbench suites show imagenet256
      diffbench suites validate suites/*.yaml
    """


@suites.command("list")
@include_path_option
def list_suites(include: list[Path]) -> None:
    """List the suites diffbench finds by name: the include paths' ones first, then the shipped
    ones; each with where it comes from, version, tasks and description. A name found earlier
    shadows the same name later (marked "shadowed").

    \b
    Examples:
      diffbench suites list
      diffbench suites list --include-path my_suites/
    """
    for found in found_suites(include):
        origin = found.origin + (f", shadowed by {found.shadowed_by}" if found.shadowed_by else "")
        problems = suite_problems(found.path, include=include)
        if problems:
            click.echo(f"{found.name:<16} INVALID  ({origin}) {problems[0]}")
            continue
        suite = load_suite(found.path, include=include).suite
        click.echo(f"{found.name:<16} {suite.name} v{suite.version}  ({origin})")
        click.echo(f"{'':<16} tasks: {', '.join(suite.tasks)}")
        if suite.description:
            click.echo(f"{'':<16} {suite.description.strip().splitlines()[0]}")


@suites.command("show")
@click.argument("suite")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a suite value (repeatable).")
@include_path_option
def show(suite: str, overrides: tuple[str, ...], include: list[Path]) -> None:
    """Print a suite (file or name) with its includes and overrides resolved.

    \b
    Example:
      diffbench suites show imagenet256 --set tasks.repa-sde-cfg.generation.num_images=1000
    """
    loaded = load_suite(suite, list(overrides), include)
    click.echo(f"# {loaded.path} ({loaded.origin})")
    for f in loaded.files[:-1]:
        click.echo(f"# includes {f}")
    for key, value in loaded.overrides.items():
        click.echo(f"# --set {key}={value!r}")
    click.echo(yaml.safe_dump(loaded.suite.model_dump(mode="json"), sort_keys=False).rstrip())


@suites.command("validate")
@click.argument("suite_files", nargs=-1, required=True)
@include_path_option
def validate(suite_files: tuple[str, ...], include: list[Path]) -> None:
    """Check suites (files or names); exit 0 when all are valid, 2 otherwise (one line per
    problem).

    \b
    Examples:
      diffbench suites validate suites/*.yaml
      diffbench suites validate vitonhd dresscode
    """
    bad = False
    for path in suite_files:
        problems = suite_problems(path, include=include)
        for line in problems:
            click.echo(line, err=True)
        if not problems:
            click.echo(f"{path}: ok")
        bad = bad or bool(problems)
    if bad:
        sys.exit(2)


COMMANDS = [suites]
