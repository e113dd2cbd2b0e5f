"""Suites and published numbers by name: shipped, include paths (option, env, config), files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from diffbench import resources
from diffbench.cli import main
from diffbench.config import set_value
from diffbench.errors import ConfigError
from diffbench.published import all_published
from diffbench.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.stem for p in (ROOT / "suites").glob("*.yaml") if not p.stem.startswith("_"))

MINE = """
name: mine
version: 1
tasks:
  digits:
    condition: class
    generation: {images_per_condition: 2, seed: 1, sampler: {num_classes: 10}}
    protocol: demo-digits
    metrics: {fid: {}, accuracy: {}}
    reference:
      dataset: {name: digits, reader: sklearn-digits, args: {size: 32, split: test}}
"""

PUBLISHED = """
published_format: 1
suite: mine
protocol: demo-digits
entries:
  - key: mine/paper-model
    task: digits
    model: paper-model
    source: A paper, Table 9
    metrics: {fid: 12.5, accuracy: 0.97}
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_shipped_folders_are_the_checkouts_top_level_ones():
    # In a checkout the single source is read; a wheel carries the same files (test_packaging).
    assert resources.shipped_dir("suites") == ROOT / "suites"
    assert resources.shipped_dir("reference_stats") == ROOT / "reference_stats"


def test_a_shipped_suite_loads_by_name_and_by_path_alike():
    by_name = load_suite("vitonhd")
    by_path = load_suite(ROOT / "suites" / "vitonhd.yaml")
    assert by_name.path == by_path.path and by_name.resolved == by_path.resolved
    assert by_name.origin == "shipped" and by_path.origin == "file"
    assert load_suite("vitonhd.yaml").path == by_path.path  # the file name works as a name
    # an include-only part resolves relatively inside the shipped folder
    assert [f.name for f in load_suite("imagenet256").files] == ["_imagenet256_base.yaml",
                                                                  "imagenet256.yaml"]


def test_an_unknown_name_is_one_error_with_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'vitonhd'"):
        load_suite("vitonhdd")
    res = invoke("run", "vitonhdd", "--model", "toy")
    assert res.exit_code == 2 and "suite 'vitonhdd' not found" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = invoke("run", "no/such/file.yaml", "--model", "toy")  # a path: never looked up by name
    assert res.exit_code == 2 and "no such file" in res.stderr


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_include_path_adds_suites_and_a_name_found_there_shadows_the_shipped_one(tmp_path):
    mine = tmp_path / "mine"
    _write(mine, "mine.yaml", MINE)
    # a user vitonhd builds on the shipped one by name (never on itself) and changes a seed
    _write(mine, "vitonhd.yaml", "include: vitonhd\ntasks: {paired: {generation: {seed: 7}}}\n")
    loaded = load_suite("mine", include=[mine])
    assert loaded.origin == f"include path {mine}" and loaded.suite.name == "mine"
    mine_vitonhd = load_suite("vitonhd", include=[mine])
    assert mine_vitonhd.files == [ROOT / "suites" / "vitonhd.yaml", mine / "vitonhd.yaml"]
    assert mine_vitonhd.suite.tasks["paired"].generation.seed == 7
    assert load_suite("vitonhd", include=[]).suite.tasks["paired"].generation.seed == 42
    listing = invoke("suites", "list", "--include-path", mine)
    assert listing.exit_code == 0, listing.output
    lines = [x for x in listing.stdout.splitlines() if x and not x.startswith(" ")]
    assert lines[0].startswith("mine ") and f"(include path {mine})" in lines[0]
    assert any(x.startswith("vitonhd ") and "shipped, shadowed by" in x for x in lines)
    assert {x.split()[0] for x in lines} == {"mine", *SHIPPED}
    assert "INVALID" not in listing.stdout


def test_user_suite_includes_a_shipped_one_by_name_from_anywhere(tmp_path):
    path = _write(tmp_path / "elsewhere", "small-demo.yaml", """
        include: demo
        name: small-demo
        tasks:
          digits-sde-cfg: {generation: {images_per_condition: 2}}
    """)
    loaded = load_suite(path)
    assert loaded.files[0] == ROOT / "suites" / "demo.yaml"
    task = loaded.suite.tasks["digits-sde-cfg"]
    assert task.generation.images_per_condition == 2 and task.protocol == "demo-digits"
    bad = _write(tmp_path, "bad.yaml", "include: no-such-suite\n")
    with pytest.raises(ConfigError, match="neither a file next to this suite nor a suite name"):
        load_suite(bad)


def test_environment_and_config_include_paths(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    _write(a, "mine.yaml", MINE)
    _write(b, "mine.yaml", MINE.replace("version: 1", "version: 2"))
    set_value("include.path", str(b))
    assert load_suite("mine").suite.version == 2
    monkeypatch.setenv("DIFFBENCH_INCLUDE_PATH", str(a))  # before the config's
    assert load_suite("mine").suite.version == 1
    assert resources.include_paths([b]) == [b, a]  # the option first
    monkeypatch.setenv("DIFFBENCH_INCLUDE_PATH", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="DIFFBENCH_INCLUDE_PATH .*missing: not a folder"):
        load_suite("mine")
    res = invoke("suites", "list", "--include-path", tmp_path / "nope")
    assert res.exit_code == 2 and "--include-path" in res.stderr and "not a folder" in res.stderr


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_published_files_in_an_include_path_reach_the_report(tmp_path):
    folder = tmp_path / "mine"
    _write(folder, "mine.yaml", MINE)
    _write(folder, "mine-published.yaml", PUBLISHED)
    suites = [f.name for f in resources.suites([folder])]
    assert "mine-published" not in suites and "mine" in suites  # not taken for a suite
    keys = [e.key for p in all_published(include=[folder]) for e in p.entries]
    assert "mine/paper-model" in keys and any(k.startswith("demo/") for k in keys)  # + shipped
    assert "mine/paper-model" not in [e.key for p in all_published(include=[]) for e in p.entries]
    out = tmp_path / "run"
    res = invoke("run", "mine", "--include-path", folder, "--model", "toy", "--model-arg",
                 "size=32", "--out", out, "--workers", "0")
    assert res.exit_code == 0, res.output
    res = invoke("report", out, "-o", tmp_path / "report", "--include-path", folder)
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(tmp_path / "report" / "report.csv")
    published = frame[frame["origin"] == "published"]
    assert set(published["model"]) == {"paper-model"}
    assert set(published["metric"]) == {"fid", "accuracy"}
    without = invoke("report", out, "-o", tmp_path / "report2")
    assert without.exit_code == 0
    assert "published" not in set(pd.read_csv(tmp_path / "report2" / "report.csv")["origin"])
