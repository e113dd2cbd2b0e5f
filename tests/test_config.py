"""Where data lives: --data, DIFFBENCH_DATA_<NAME>, the user config file."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from diffbench.cli import main
from diffbench.config import parse_pairs, set_value
from diffbench.errors import ConfigError, DataError
from diffbench.refdata import env_name, resolve_data


def test_missing_location_names_all_three_ways():
    with pytest.raises(DataError) as info:
        resolve_data("vitonhd")
    msg = str(info.value)
    assert "--data vitonhd=PATH" in msg
    assert "DIFFBENCH_DATA_VITONHD" in msg
    assert "diffbench config set data.vitonhd PATH" in msg


def test_precedence_cli_env_config(tmp_path, monkeypatch):
    a, b, c = (tmp_path / n for n in "abc")
    for p in (a, b, c):
        p.mkdir()
    set_value("data.imagenet256-ref", str(c))
    assert resolve_data("imagenet256-ref")[0] == c
    monkeypatch.setenv(env_name("imagenet256-ref"), str(b))
    assert env_name("imagenet256-ref") == "DIFFBENCH_DATA_IMAGENET256_REF"
    assert resolve_data("imagenet256-ref")[0] == b
    assert resolve_data("imagenet256-ref", {"imagenet256-ref": str(a)}) == (a, "--data")


def test_location_that_does_not_exist(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        resolve_data("x", {"x": str(tmp_path / "missing")})


def test_parse_pairs():
    assert parse_pairs(["a=1", "b = /x=y"], "--data") == {"a": "1", "b": "/x=y"}
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_pairs(["nope"], "--data")


def test_config_cli_roundtrip(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["config", "set", "data.vitonhd", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert runner.invoke(main, ["config", "get", "data.vitonhd"]).stdout.strip() == str(tmp_path)
    assert "vitonhd" in runner.invoke(main, ["config", "show"]).stdout
    assert runner.invoke(main, ["config", "unset", "data.vitonhd"]).exit_code == 0
    assert runner.invoke(main, ["config", "get", "data.vitonhd"]).stdout.strip() == ""


def test_config_bad_key_is_one_line_exit_2():
    res = CliRunner().invoke(main, ["config", "set", "colour", "x"])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and "SECTION.NAME" in res.stderr
