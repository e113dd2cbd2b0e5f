"""The `diffbench` command line. Each sub-module holds the click commands of one area.

Commands parse arguments, call the library and print. User errors (`DiffbenchError`) become one
line on stderr and exit code 2 (3 for "not comparable"); there is no traceback for them.
"""

from __future__ import annotations

import importlib
import sys

import click

from diffbench import __version__
from diffbench.cpu import keep_freed_memory
from diffbench.errors import DiffbenchError
from diffbench.log import configure_logging


class _Group(click.Group):
    """A click group that turns DiffbenchError into one line and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DiffbenchError as exc:
            click.echo(f"diffbench: error: {_one_line(str(exc))}", err=True)
            sys.exit(exc.exit_code)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands)


def _one_line(text: str) -> str:
    return " ".join(text.split())


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="diffbench")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or info messages.")
@click.option("-v", "--verbose", is_flag=True, help="Debug messages on stderr.")
def main(quiet: bool, verbose: bool) -> None:
    """diffbench: the standard benchmarks of diffusion models, numbers that match the papers.

    \b
    Examples:
      diffbench suites list
      diffbench suites validate suites/*.yaml
      diffbench metrics
    """
    configure_logging(verbose=verbose, quiet=quiet)
    keep_freed_memory()  # reuse freed activations instead of faulting them in again (cpu.py)


# One command module per line (diffbench/cli/<name>.py, each exporting COMMANDS).
_COMMAND_MODULES = [
    "suites_cmd",
    "registry_cmds",
    "config_cmd",
    "gate_cmd",
    "report_cmd",
    "weights_cmd",
    "score_cmd",
    "generate_cmd",
    "run_cmd",
]


def _register() -> None:
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"diffbench.cli.{name}")
        for command in module.COMMANDS:
            main.add_command(command)


_register()
