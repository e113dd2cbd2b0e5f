"""The results record: schema shipped in the package, checked on write and read."""

from __future__ import annotations

import json

import pytest

from diffbench.errors import ResultsError
from diffbench.results import RunLayout, new_record, read, schema, validation_problems, write


def record(**extra):
    return new_record(kind="score", protocol="torch-fidelity",
                      metrics={"fid": {"value": 12.5, "n": {"real": 100, "fake": 100},
                                       "higher_is_better": False},
                               "kid": {"value": 0.01, "std": 0.002}},
                      counts={"real": 100, "fake": 100}, **extra)


def test_schema_is_shipped_and_is_json_schema():
    s = schema()
    assert s["title"] == "diffbench results record"
    assert "metrics" in s["required"]


def test_roundtrip(tmp_path):
    rec = record(task="main", suite={"name": "s", "version": 1}, timings={"score": 1.5})
    path = write(rec, tmp_path / "results" / "main.json")
    assert read(path) == rec
    assert not list(tmp_path.rglob("*.tmp"))


def test_environment_block_is_filled():
    env = record()["environment"]
    assert env["packages"]["torch"] and env["python"] and env["world_size"] == 1


@pytest.mark.parametrize("mutate, where", [
    (lambda r: r.pop("metrics"), "(top level)"),
    (lambda r: r["metrics"]["fid"].pop("value"), "metrics.fid"),
    (lambda r: r["metrics"]["fid"].update(value="12.5"), "metrics.fid.value"),
    (lambda r: r.update(surprise=1), "(top level)"),
    (lambda r: r["counts"].update(real=-1), "counts.real"),
    (lambda r: r.update(metrics={}), "metrics"),
])
def test_invalid_records_are_refused(tmp_path, mutate, where):
    rec = record()
    mutate(rec)
    problems = validation_problems(rec)
    assert problems and problems[0].startswith(where), problems
    with pytest.raises(ResultsError, match="not a valid diffbench results record"):
        write(rec, tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("where, bad", [
    ("metrics.fid.value", float("nan")), ("metrics.kid.std", float("inf")),
    ("metrics.fid.ci.low", float("-inf")), ("timings.score", float("nan")),
])
def test_non_finite_numbers_are_refused_on_write(tmp_path, where, bad):
    rec = record(timings={"score": 1.0})
    rec["metrics"]["fid"]["ci"] = {"low": 12.0, "high": 13.0}
    *parents, last = where.split(".")
    target = rec
    for key in parents:
        target = target[key]
    target[last] = bad
    with pytest.raises(ResultsError, match=rf"{where} is {bad}; .*finite numbers only"):
        write(rec, tmp_path / "r.json")
    assert not list(tmp_path.iterdir())  # nothing written, no temporary file left


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("field", ['"value": 12.5', '"std": 0.002', '"high": 13.0'])
def test_non_finite_numbers_are_refused_on_read(tmp_path, token, field):
    rec = record()
    rec["metrics"]["kid"]["ci"] = {"low": 0.0, "high": 13.0}
    path = write(rec, tmp_path / "r.json")
    text = path.read_text()
    assert text.count(field) == 1
    path.write_text(text.replace(field, field.split(":")[0] + ": " + token))
    with pytest.raises(ResultsError, match=r"r\.json: metrics\.(fid|kid)\.[a-z.]+ is -?(nan|inf); "
                                           "a results record holds finite numbers only"):
        read(path)


def test_read_checks_schema_and_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"metrics": {}}))
    with pytest.raises(ResultsError, match="not a valid"):
        read(bad)
    truncated = tmp_path / "trunc.json"
    truncated.write_text('{"schema_version": 1, "metr')
    with pytest.raises(ResultsError, match="not JSON"):
        read(truncated)
    with pytest.raises(ResultsError, match="not found"):
        read(tmp_path / "missing.json")


def test_run_layout(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout.samples("t") == tmp_path / "samples" / "t"
    assert layout.manifest("t").name == "manifest.jsonl"
    assert layout.results("t") == tmp_path / "results" / "t.json"
    assert layout.results() == tmp_path / "results.json"
