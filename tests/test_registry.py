"""Registries: lazy built-ins, plugins from entry points, "did you mean", CLI listings."""

from __future__ import annotations

import textwrap

import pytest
from click.testing import CliRunner

from diffbench.cli import main
from diffbench.errors import RegistryError
from diffbench.registry import REGISTRIES, Registry

PLUGIN_MODULE = '''
"""A third-party diffbench plugin used by the tests."""

from diffbench.metrics.args import Arg
from diffbench.metrics.spec import MetricSpec, Needs, Output


def sharpness(fake, *, kernel=3):
    return float(abs(fake).mean()) * kernel


SHARPNESS = MetricSpec(
    name="sharpness", family="distribution",
    summary="Mean absolute Laplacian of generated images (a plugin metric).",
    outputs=(Output("sharpness", "Sharpness", True),), compute=sharpness,
    needs=Needs(form="fake_rows"),
    args={"kernel": Arg("int", 3, "kernel size", minimum=1),
          "scale": Arg("float", 1.0, "display scale", minimum=0)})


class SharpnessMetric:
    """A metric written as a class: not a MetricSpec, refused with a clear error."""


def read_lines(root, pattern="*.txt"):
    """A plugin dataset reader."""
    return root, pattern
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Install a small plugin distribution (real dist-info metadata) on sys.path."""
    (tmp_path / "dbench_plugin_demo.py").write_text(PLUGIN_MODULE)
    info = tmp_path / "dbench_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dbench-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [diffbench.metrics]
        sharpness = dbench_plugin_demo:SHARPNESS
        classy = dbench_plugin_demo:SharpnessMetric
        renamed = dbench_plugin_demo:SHARPNESS
        broken = dbench_plugin_demo:DoesNotExist

        [diffbench.datasets]
        lines = dbench_plugin_demo:read_lines
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path


def test_builtin_entries_all_load():
    for registry in REGISTRIES.values():
        for name in registry.names():
            if registry.entry(name).source == "builtin":
                desc = registry.describe(name)
                assert desc.summary and desc.summary != "(no description)", (registry.kind, name)


def test_plugin_is_found_and_described(plugin):
    metrics = REGISTRIES["metrics"]
    assert "sharpness" in metrics.names()
    desc = metrics.describe("sharpness")
    assert desc.summary == "Mean absolute Laplacian of generated images (a plugin metric)."
    assert desc.arguments == ["kernel=3", "scale=1.0"]
    assert desc.source == "plugin dbench-plugin-demo"
    assert REGISTRIES["datasets"].get("lines").__name__ == "read_lines"


def test_broken_plugin_is_a_clear_error(plugin):
    with pytest.raises(RegistryError, match="'broken'.*cannot be loaded"):
        REGISTRIES["metrics"].get("broken")
    with pytest.raises(RegistryError, match="'classy'.*which is not a diffbench MetricSpec"):
        REGISTRIES["metrics"].get("classy")
    with pytest.raises(RegistryError, match="'renamed'.*named 'sharpness'; register it under"):
        REGISTRIES["metrics"].get("renamed")


def test_plugin_cannot_shadow_builtin(tmp_path, monkeypatch):
    reg = Registry("thing", "diffbench.tests-none", {"alpha": "json:dumps"})
    reg.register("beta", "json:loads")
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("alpha", "json:loads")
    assert reg.get("alpha").__name__ == "dumps"


def test_did_you_mean():
    reg = Registry("metric", "diffbench.tests-none", {"precision": "json:dumps",
                                                      "recall": "json:loads"})
    with pytest.raises(RegistryError) as info:
        reg.get("precison")
    assert "did you mean 'precision'" in str(info.value)
    assert "known: precision, recall" in str(info.value)


def test_lazy_builtin_not_imported_until_get():
    reg = Registry("thing", "diffbench.tests-none", {"x": "module_that_does_not_exist:obj"})
    assert reg.names() == ["x"]  # listing imports nothing
    with pytest.raises(RegistryError, match="cannot be loaded"):
        reg.get("x")


def test_cli_lists_plugin_metric(plugin):
    res = CliRunner().invoke(main, ["metrics"])
    assert res.exit_code == 0, res.output
    assert "sharpness" in res.stdout and "[plugin dbench-plugin-demo]" in res.stdout
    assert "arguments: kernel=3, scale=1.0" in res.stdout
    assert "broken" in res.stdout and "BROKEN" in res.stdout


@pytest.mark.parametrize("command", ["models", "metrics", "datasets", "protocols"])
def test_cli_listing_commands_run(command):
    res = CliRunner().invoke(main, [command])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip()
