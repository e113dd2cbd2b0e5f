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


def _options():
    for path, cmd in _all_commands(main):
        for param in cmd.params:
            if isinstance(param, click.Option) and param.name != "help":
                yield path, cmd, param


def test_every_option_has_help():
    ctx = click.Context(main)
    missing = [f"{' '.join(path)} {param.opts[-1]}" for path, cmd, param in _options()
               if not (param.get_help_record(ctx) or ("", ""))[1].strip()]
    assert missing == []


def test_protocol_and_metric_help_come_from_the_registries():
    from diffbench.metrics.spec import all_specs
    from diffbench.registry import PROTOCOLS

    for argv in (["score", "--help"], ["stats", "compute", "--help"]):
        text = " ".join(CliRunner().invoke(main, argv).stdout.split()).replace("- ", "-")
        assert all(p in text for p in PROTOCOLS.names()), (argv, text)
    text = " ".join(CliRunner().invoke(main, ["score", "--help"]).stdout.split())
    scoreable = [s.name for s in all_specs() if s.family == "distribution" and not s.needs.labels]
    assert ", ".join(scoreable) in text
    from diffbench.registry import ADAPTERS

    for argv in (["run", "--help"], ["generate", "--help"]):
        text = " ".join(CliRunner().invoke(main, argv).stdout.split()).replace("- ", "-")
        assert f"Model adapter: {', '.join(ADAPTERS.names())}" in text, (argv, text)


@pytest.mark.parametrize("argv", [
    ["run", "demo", "--model", "toy", "--out", "o"],
    ["generate", "demo", "--model", "toy", "--out", "o"],
    ["score", "--real", "r", "--fake", "f"],
    ["stats", "compute", "r", "-o", "s.npz"],
])
def test_device_takes_the_same_values_everywhere(argv, tmp_path, monkeypatch):
    """cpu, cuda and cuda:N parse in every command; the library checks them (one line)."""
    monkeypatch.chdir(tmp_path)
    declared = {p.metavar for path, cmd, p in _options() if p.name == "device"}
    assert declared == {"DEVICE"}  # one declaration (diffbench.cli.common.device_option)
    res = CliRunner().invoke(main, [*argv, "--device", "cuda:7"])
    assert res.exit_code == 2
    import torch

    if not torch.cuda.is_available():
        assert res.stderr.startswith("diffbench: error: --device cuda:7: no usable CUDA GPU"), \
            res.output
    assert list(tmp_path.iterdir()) == []
