"""The `diffbench` command line. Each sub-module holds the click commands of one area.

Commands parse arguments, call the library and print. User errors (`DiffbenchError`) and
operating-system faults (`OSError`: a full disk, permissions) become one line on stderr and exit
code 2 (`DiffbenchError.exit_code`); there is no traceback for them. Ctrl-C (SIGINT) exits 130 with
"interrupted; rerun the same command to resume". The gate exits 1 on a regression.
"""

from __future__ import annotations

import importlib
import sys

import click
from PIL import Image

from diffbench import __version__
from diffbench.cpu import keep_freed_memory
from diffbench.errors import DiffbenchError
from diffbench.fsutil import describe_os_error
from diffbench.log import configure_logging

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class _Group(click.Group):
    """A click group that turns user errors and OS faults into one line and an exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DiffbenchError as exc:
            _fail(str(exc), exc.exit_code)
        except click.UsageError as exc:  # click's own 4-line form, as one line
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise  # a bare group: its help, as click shows it
            where = " ".join(["diffbench", *(exc.ctx.command_path.split()[1:] if exc.ctx else [])])
            _fail(f"{where}: {exc.format_message()} (see `{where} --help`)", 2)
        except KeyboardInterrupt:
            click.echo("diffbench: interrupted; rerun the same command to resume", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except OSError as exc:  # the OS refused a read or write: the path and the fix
            _fail(describe_os_error(exc), 2)
        except Image.DecompressionBombError as exc:
            _fail(f"{exc} (if the file is trusted, raise the limit with --max-pixels or "
                  "DIFFBENCH_MAX_PIXELS)", 2)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands)


def _fail(message: str, code: int) -> None:
    click.echo(f"diffbench: error: {' '.join(message.split())}", err=True)
    sys.exit(code)


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
    "data_cmd",
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
