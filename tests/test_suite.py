"""Suite schema, includes, overrides and `diffbench suites validate`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffbench.cli import main
from diffbench.errors import ConfigError
from diffbench.registry import DATASETS, METRICS, PROTOCOLS
from diffbench.resources import suites as shipped_suites
from diffbench.suite import (
    SuiteInvalid,
    apply_overrides,
    deep_merge,
    load_suite,
    suite_problems,
)

VALID = """
name: mini
version: 2
description: a small suite
tasks:
  main:
    condition: class
    generation: {{images_per_condition: 2, seed: 3, sampler: {{steps: 10}}}}
    protocol: {protocol}
    metrics: {{{metric}: {{}}}}
"""


@pytest.fixture
def names():
    """A protocol and a metric it defines, both from the registries (shipped ones)."""
    from diffbench.protocols import get_protocol

    protocol = PROTOCOLS.names()[0] if PROTOCOLS.names() else None
    defined = get_protocol(protocol).metrics if protocol else ()
    metric = next((m for m in METRICS.names() if m in defined), None)
    if protocol is None or metric is None:
        pytest.fail("the registries must hold at least one protocol and one metric")
    return protocol, metric


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_suite_loads(tmp_path, names):
    path = write(tmp_path, "s.yaml", VALID.format(protocol=names[0], metric=names[1]))
    loaded = load_suite(path)
    assert loaded.suite.name == "mini" and loaded.suite.version == 2
    task = loaded.suite.tasks["main"]
    assert task.generation.images_per_condition == 2
    assert task.generation.sampler == {"steps": 10}


def test_unknown_key_names_file_path_and_allowed(tmp_path, names):
    text = VALID.format(protocol=names[0], metric=names[1]).replace(
        "generation: {", "generaton: {x: 1}\n    generation: {")
    path = write(tmp_path, "bad.yaml", text)
    problems = suite_problems(path)
    assert any(str(path) in p and "tasks.main.generaton" in p and "unknown key" in p
               and "generation" in p for p in problems), problems


def test_unknown_key_inside_generation_lists_generation_keys(tmp_path, names):
    text = VALID.format(protocol=names[0], metric=names[1]).replace("seed: 3", "sed: 3")
    problems = suite_problems(write(tmp_path, "bad.yaml", text))
    assert len(problems) == 1
    assert "tasks.main.generation.sed" in problems[0]
    assert "images_per_condition" in problems[0] and "sampler" in problems[0]


def test_wrong_type_and_missing_key(tmp_path, names):
    text = VALID.format(protocol=names[0], metric=names[1]).replace("version: 2", "version: two")
    text = text.replace("    protocol: ", "    # protocol: ")
    problems = suite_problems(write(tmp_path, "bad.yaml", text))
    joined = "\n".join(problems)
    assert "version" in joined and "tasks.main.protocol: required key is missing" in joined
    assert len(problems) == 2


def test_unknown_metric_gets_did_you_mean(tmp_path, names):
    metric = names[1]
    typo = metric[:-1] + ("x" if metric[-1] != "x" else "y")
    problems = suite_problems(write(tmp_path, "s.yaml", VALID.format(protocol=names[0],
                                                                       metric=typo)))
    assert len(problems) == 1
    assert f"tasks.main.metrics.{typo}" in problems[0] and "did you mean" in problems[0]


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = write(tmp_path, "broken.yaml", "name: [unclosed\n")
    assert "invalid YAML" in suite_problems(bad)[0]
    assert "not found" in suite_problems(tmp_path / "nope.yaml")[0]


def test_include_merges_deeply_and_null_deletes(tmp_path, names):
    write(tmp_path, "base.yaml", VALID.format(protocol=names[0], metric=names[1]))
    child = write(tmp_path, "child.yaml", """
        include: base.yaml
        name: child
        description: null
        tasks:
          main:
            generation: {sampler: {cfg: 1.5}}
    """)
    loaded = load_suite(child)
    task = loaded.suite.tasks["main"]
    assert loaded.suite.name == "child"
    assert loaded.suite.description == ""
    assert task.generation.sampler == {"steps": 10, "cfg": 1.5}
    assert task.generation.seed == 3
    assert [p.name for p in loaded.files] == ["base.yaml", "child.yaml"]


def test_include_cycle_is_refused(tmp_path):
    write(tmp_path, "a.yaml", "include: b.yaml\n")
    write(tmp_path, "b.yaml", "include: a.yaml\n")
    with pytest.raises(ConfigError, match="include cycle"):
        load_suite(tmp_path / "a.yaml")


def test_include_absolute_path_refused(tmp_path):
    path = write(tmp_path, "a.yaml", f"include: {tmp_path / 'b.yaml'}\n")
    with pytest.raises(ConfigError, match="must be relative"):
        load_suite(path)


def test_overrides_apply_and_are_recorded(tmp_path, names):
    path = write(tmp_path, "s.yaml", VALID.format(protocol=names[0], metric=names[1]))
    loaded = load_suite(path, ["tasks.main.generation.seed=7",
                               "tasks.main.generation.sampler.guidance_interval=[0, 0.7]"])
    gen = loaded.suite.tasks["main"].generation
    assert gen.seed == 7 and gen.sampler["guidance_interval"] == [0, 0.7]
    assert loaded.overrides == {"tasks.main.generation.seed": 7,
                                "tasks.main.generation.sampler.guidance_interval": [0, 0.7]}


def test_override_errors(tmp_path, names):
    with pytest.raises(ConfigError, match="KEY.PATH=VALUE"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="is a value, not a mapping"):
        apply_overrides({"name": "x"}, ["name.sub=1"])
    path = write(tmp_path, "s.yaml", VALID.format(protocol=names[0], metric=names[1]))
    with pytest.raises(SuiteInvalid, match="generation.seed"):
        load_suite(path, ["tasks.main.generation.seed=-1"])


def test_deep_merge_does_not_mutate():
    base = {"a": {"b": 1, "c": [1]}}
    merged = deep_merge(base, {"a": {"b": 2}})
    assert merged == {"a": {"b": 2, "c": [1]}} and base == {"a": {"b": 1, "c": [1]}}


def test_shipped_suites_are_valid():
    suites = [f.path for f in shipped_suites()]
    assert suites, "no shipped suites found"
    for path in suites:
        assert suite_problems(path) == [], path


def test_shipped_suites_use_registered_names():
    for path in [f.path for f in shipped_suites()]:
        for task in load_suite(path).suite.tasks.values():
            assert task.protocol in PROTOCOLS
            assert all(m in METRICS for m in task.metrics)
            if task.reference.dataset:
                assert task.reference.dataset.reader in DATASETS


def test_cli_validate_exit_codes(tmp_path, names):
    good = write(tmp_path, "good.yaml", VALID.format(protocol=names[0], metric=names[1]))
    bad = write(tmp_path, "bad.yaml", VALID.format(protocol=names[0], metric=names[1])
                .replace("version: 2", "version: 0").replace("seed: 3", "sed: 3"))
    runner = CliRunner()
    ok = runner.invoke(main, ["suites", "validate", str(good)])
    assert ok.exit_code == 0, ok.output
    res = runner.invoke(main, ["suites", "validate", str(good), str(bad)])
    assert res.exit_code == 2
    err_lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(err_lines) == 2 and all(str(bad) in line for line in err_lines)
    assert "Traceback" not in res.output


def test_cli_show_and_list(names):
    runner = CliRunner()
    shipped = [f.path for f in shipped_suites()][0]
    res = runner.invoke(main, ["suites", "show", str(shipped), "--set", "version=9"])
    assert res.exit_code == 0, res.output
    assert "version: 9" in res.stdout and "# --set version=9" in res.stdout
    listing = runner.invoke(main, ["suites", "list"])
    assert listing.exit_code == 0 and shipped.stem in listing.stdout and "(shipped)" in listing.stdout
    assert "INVALID" not in listing.stdout


def test_two_metrics_writing_one_output_key_are_refused(tmp_path):
    """prc and prdc both write precision/recall: `suites validate`, `run` and `score` refuse the
    pair before any work, in one line naming both and the fix."""
    text = VALID.format(protocol="adm", metric="prc").replace(
        "prc: {}", "prc: {}, prdc: {protocol: dgm-eval}")
    path = write(tmp_path, "clash.yaml", text)
    runner = CliRunner()
    res = runner.invoke(main, ["suites", "validate", str(path)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "tasks.main.metrics: prc and prdc both write precision, recall" in lines[0]
    assert "second task" in lines[0]
    run = runner.invoke(main, ["run", str(path), "--model", "toy", "--out", str(tmp_path / "o")])
    assert run.exit_code == 2 and "both write precision, recall" in run.stderr
    assert not (tmp_path / "o").exists()
    ok = write(tmp_path, "ok.yaml", VALID.format(protocol="adm", metric="prc"))
    assert runner.invoke(main, ["suites", "validate", str(ok)]).exit_code == 0


def test_score_refuses_output_collisions_and_unknown_metric_args(tmp_path):
    from diffbench import api
    from diffbench.protocols import ADM, get_protocol
    from diffbench.resolve import task_problems

    assert any("both write precision, recall" in p
               for p in task_problems(["prc", "prdc"], ADM))
    both = get_protocol("dgm-eval")
    with pytest.raises(ConfigError, match="not among --metrics"):
        api.score(tmp_path, tmp_path, ["fd_dinov2"], both, metric_args={"kid": {"subsets": 2}})
    with pytest.raises(ConfigError, match="--metric-arg fd_dinov2.args.scal: unknown argument"):
        api.score(tmp_path, tmp_path, ["fd_dinov2"], both, metric_args={"fd_dinov2": {"scal": 2}})
