"""`diffbench suites list|show|validate`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from diffbench.suite import default_suites_dir, find_suites, load_suite, suite_problems


@click.group("suites")
def suites() -> None:
    """List, show and validate benchmark suites (YAML files).

    \b
    Examples:
      diffbench suites list
      diffbench suites show suites/imagenet256.yaml
      diffbench suites validate suites/*.yaml
    """


@suites.command("list")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Folder of suites (default: the shipped suites/).")
def list_suites(directory: Path | None) -> None:
    """List the suites in a folder with their version, tasks and description.

    \b
    Example:
      diffbench suites list --dir my_suites/
    """
    directory = directory or default_suites_dir()
    for path in find_suites(directory):
        problems = suite_problems(path)
        if problems:
            click.echo(f"{path.name:<24} INVALID  {problems[0]}")
            continue
        suite = load_suite(path).suite
        tasks = ", ".join(suite.tasks)
        click.echo(f"{path.name:<24} {suite.name} v{suite.version}  tasks: {tasks}")
        if suite.description:
            click.echo(f"{'':<24} {suite.description.strip().splitlines()[0]}")


@suites.command("show")
@click.argument("suite_file", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a suite value (repeatable).")
def show(suite_file: Path, overrides: tuple[str, ...]) -> None:
    """Print a suite with its includes and overrides resolved.

    \b
    Example:
      diffbench suites show suites/imagenet256.yaml --set tasks.repa-sde-cfg.generation.num_images=1000
    """
    loaded = load_suite(suite_file, list(overrides))
    click.echo(f"# {loaded.path}")
    for f in loaded.files[:-1]:
        click.echo(f"# includes {f}")
    for key, value in loaded.overrides.items():
        click.echo(f"# --set {key}={value!r}")
    click.echo(yaml.safe_dump(loaded.suite.model_dump(mode="json"), sort_keys=False).rstrip())


@suites.command("validate")
@click.argument("suite_files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(suite_files: tuple[Path, ...]) -> None:
    """Check suites; exit 0 when all are valid, 2 otherwise (one line per problem).

    \b
    Example:
      diffbench suites validate suites/*.yaml
    """
    bad = 0
    for path in suite_files:
        problems = suite_problems(path)
        for line in problems:
            click.echo(line, err=True)
        if problems:
            bad += 1
        else:
            click.echo(f"{path}: ok")
    if bad:
        sys.exit(2)


COMMANDS = [suites]
