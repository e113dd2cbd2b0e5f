"""CLI conventions: --version, examples in every --help, user errors as one line + exit 2."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from diffbench import __version__
from diffbench.cli import main


def _all_commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        path = (*prefix, name)
        if isinstance(cmd, click.Group):
            yield path, cmd
            yield from _all_commands(cmd, path)
        else:
            yield path, cmd


def test_version():
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and __version__ in res.stdout


def test_help_lists_commands():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    for name in ("suites", "models", "metrics", "config"):
        assert name in res.stdout


@pytest.mark.parametrize("path", [p for p, _ in _all_commands(main)], ids=" ".join)
def test_every_command_help_shows_an_example(path):
    res = CliRunner().invoke(main, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert "Example" in res.stdout, f"`diffbench {' '.join(path)} --help` shows no example"
    assert "diffbench " in res.stdout.split("Example", 1)[1]


def test_user_error_is_one_line_exit_2_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [\n")
    proc = subprocess.run([sys.executable, "-m", "diffbench", "suites", "show", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffbench: error: ")
    assert str(bad) in lines[0] and "Traceback" not in proc.stderr
