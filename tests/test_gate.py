"""`diffbench gate`: exit codes 0/1/2/3, tolerances, confidence intervals, directions, tasks."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from diffbench.cli import main
from diffbench.errors import ConfigError
from diffbench.gate import gate, init_baseline, load_baseline, markdown, write_baseline
from diffbench.results import new_record, write

SUITE = {"name": "demo", "version": 1}


def make_record(fid=10.0, precision=0.7, protocol="adm", fake=1000, ci=None, task="digits",
                **extra):
    metrics = {"fid": {"value": fid, "higher_is_better": False, "extractor": "abc123"},
               "precision": {"value": precision, "higher_is_better": True}}
    if ci:
        metrics["fid"]["ci"] = {"low": ci[0], "high": ci[1], "level": 0.95}
    extra.setdefault("suite", SUITE)
    return new_record(kind="run", protocol=protocol, metrics=metrics,
                      counts={"fake": fake, "real": 500}, task=task, **extra)


@pytest.fixture
def files(tmp_path):
    base = init_baseline([make_record()], "baseline run")
    base_path = write_baseline(base, tmp_path / "baseline.yaml")

    def run(record, *extra):
        path = write(record, tmp_path / "results.json")
        return CliRunner().invoke(main, ["gate", str(path), "--baseline", str(base_path), *extra])

    return base_path, run


def test_same_numbers_pass(files):
    _, run = files
    res = run(make_record())
    assert res.exit_code == 0, res.output
    assert "| fid | 10 | 10 | +0 |" in res.stdout and "gate: PASS" in res.stdout


def test_within_tolerance_passes(files):
    _, run = files
    assert run(make_record(fid=10.4)).exit_code == 0  # rel 5% of 10 = 0.5
    assert run(make_record(precision=0.685)).exit_code == 0  # abs 0.02


def test_regression_fails_with_exit_1(files):
    _, run = files
    res = run(make_record(fid=10.6))
    assert res.exit_code == 1
    assert "regression" in res.stdout and "gate: REGRESSION" in res.stdout
    assert run(make_record(precision=0.6)).exit_code == 1


def test_improvement_never_fails(files):
    _, run = files
    res = run(make_record(fid=2.0, precision=0.99))
    assert res.exit_code == 0 and res.stdout.count("improved") == 2
    # However far: a relative tolerance of 0 and a huge improvement still pass.
    base = init_baseline([make_record()])
    base["tasks"]["digits"]["metrics"]["fid"]["tolerance"] = {"rel": 0.0}
    assert gate(make_record(fid=0.001), base).exit_code == 0


def test_within_ci_so_pass_when_beyond_ci_is_set():
    base = init_baseline([make_record()])
    base["tasks"]["digits"]["metrics"]["fid"]["beyond_ci"] = True
    worse_but_noisy = make_record(fid=11.0, ci=(9.5, 12.5))
    verdict = gate(worse_but_noisy, base)
    assert verdict.exit_code == 0
    assert "confidence interval" in verdict.rows[0].reason
    clearly_worse = make_record(fid=11.0, ci=(10.6, 11.4))
    assert gate(clearly_worse, base).exit_code == 1
    base["tasks"]["digits"]["metrics"]["fid"]["beyond_ci"] = False
    assert gate(worse_but_noisy, base).exit_code == 1


@pytest.mark.parametrize("record, why", [
    (make_record(protocol="torch-fidelity"), "protocol differs"),
    (make_record(fake=999), "sample count 'fake' differs"),
    (make_record(smoke=True), "smoke run"),
    (make_record(suite={"name": "demo", "version": 2}), "suite differs"),
    (make_record(task="other"), "task missing"),
])
def test_not_comparable_exit_3(files, record, why):
    _, run = files
    res = run(record)
    assert res.exit_code == 3, res.output
    assert why in res.stdout and "NOT COMPARABLE" in res.stdout


def test_missing_metric_or_other_fingerprint_is_not_comparable(files):
    _, run = files
    rec = make_record()
    del rec["metrics"]["precision"]
    res = run(rec)
    assert res.exit_code == 3 and "metric missing" in res.stdout
    rec = make_record()
    rec["metrics"]["fid"]["extractor"] = "other"
    res = run(rec)
    assert res.exit_code == 3 and "extractor fingerprint differs" in res.stdout


def test_not_comparable_wins_over_regression(files):
    _, run = files
    assert run(make_record(fid=50.0, fake=10)).exit_code == 3


def test_usage_errors_exit_2(tmp_path, files):
    base_path, run = files
    runner = CliRunner()
    res = runner.invoke(main, ["gate", str(tmp_path / "none.json"), "--baseline", str(base_path)])
    assert res.exit_code == 2 and "not found" in res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("metrics: {}\n")
    path = write(make_record(), tmp_path / "r.json")
    res = runner.invoke(main, ["gate", str(path), "--baseline", str(bad)])
    assert res.exit_code == 2 and "not a diffbench baseline" in res.stderr
    for content, needle in ((b"\xff\xfe baseline", "is not a UTF-8 text file"),
                            (b"metrics: [", "invalid YAML in the baseline"),
                            (b"- 1\n", "must be a mapping")):
        bad.write_bytes(content)  # one line naming the file, exit 2, never a traceback
        res = runner.invoke(main, ["gate", str(path), "--baseline", str(bad)])
        assert res.exit_code == 2 and needle in res.stderr and str(bad) in res.stderr, res.output
        assert "Traceback" not in res.output and len(res.stderr.strip().splitlines()) == 1
    res = runner.invoke(main, ["gate", str(path), "--baseline", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "gate init" in res.stderr
    assert runner.invoke(main, ["gate", str(path)]).exit_code == 2  # --baseline missing
    twice = write(make_record(), tmp_path / "r2.json")
    res = runner.invoke(main, ["gate", str(path), str(twice), "--baseline", str(base_path)])
    assert res.exit_code == 2 and "two results for task 'digits' of model" in res.stderr


def test_bad_tolerance_is_usage_error(tmp_path):
    base = init_baseline([make_record()])
    base["tasks"]["digits"]["metrics"]["fid"]["tolerance"] = {"pct": 5}
    path = write_baseline(base, tmp_path / "b.yaml")
    with pytest.raises(ConfigError, match="tasks.digits.metrics.fid.tolerance"):
        load_baseline(path)


def test_run_folder_with_several_tasks_and_sweep_points(tmp_path):
    run = tmp_path / "runs" / "demo"
    write(make_record(task="digits"), run / "results" / "digits.json")
    for g in (1.0, 2.0):
        write(make_record(task="guidance", precision=0.5 + g / 10, sweep={"guidance": g}),
              run / "results" / f"guidance@{g:g}.json")
    runner = CliRunner()
    out = tmp_path / "ci" / "baseline.yaml"
    res = runner.invoke(main, ["gate", "init", str(tmp_path / "runs"), "-o", str(out)])
    assert res.exit_code == 0 and "3 task(s)" in res.stdout, res.output
    data = yaml.safe_load(out.read_text())
    assert list(data["tasks"]) == ["digits", "guidance@guidance=1.0", "guidance@guidance=2.0"]
    assert data["suite"] == SUITE
    res = runner.invoke(main, ["gate", str(run), "--baseline", str(out)])
    assert res.exit_code == 0 and "| guidance@guidance=2.0/precision | 0.7 | 0.7 |" in res.stdout
    write(make_record(task="guidance", precision=0.6, sweep={"guidance": 2.0}),
          run / "results" / "guidance@2.json")
    res = runner.invoke(main, ["gate", str(run), "--baseline", str(out)])
    assert res.exit_code == 1 and res.stdout.count("regression (") == 1
    write(make_record(task="new"), run / "results" / "new.json")
    verdict = runner.invoke(main, ["gate", str(run), "--baseline", str(out), "--json",
                                   str(tmp_path / "v.json")])
    assert "new: not in the baseline" in verdict.stdout
    assert json.loads((tmp_path / "v.json").read_text())["notes"]


def test_init_writes_reviewable_baseline_and_json_output(tmp_path):
    path = write(make_record(), tmp_path / "r.json")
    out = tmp_path / "ci" / "baseline.yaml"
    runner = CliRunner()
    res = runner.invoke(main, ["gate", "init", str(path), "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(out.read_text())
    task = data["tasks"]["digits"]
    assert task["metrics"]["fid"]["tolerance"] == {"rel": 0.05}
    assert task["metrics"]["precision"]["tolerance"] == {"abs": 0.02}
    assert task["counts"] == {"fake": 1000, "real": 500} and task["protocol"] == "adm"
    verdict_json = tmp_path / "v.json"
    res = runner.invoke(main, ["gate", str(path), "--baseline", str(out), "--json",
                               str(verdict_json)])
    assert res.exit_code == 0
    verdict = json.loads(verdict_json.read_text())
    assert verdict["status"] == "pass" and verdict["exit_code"] == 0
    assert {m["metric"] for m in verdict["metrics"]} == {"fid", "precision"}


def test_single_task_baseline_shape_is_read(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("diffbench_baseline: 1\ntask: digits\nprotocol: adm\ncounts: {fake: 1000}\n"
                    "metrics: {fid: {value: 10.0, tolerance: {rel: 0.05}}}\n")
    base = load_baseline(path)
    assert gate(make_record(fid=10.2), base).exit_code == 0
    assert gate(make_record(fid=11.0), base).exit_code == 1


def test_markdown_table_columns():
    verdict = gate(make_record(fid=12.0), init_baseline([make_record()]))
    text = markdown(verdict)
    assert text.splitlines()[0] == "| metric | baseline | current | Δ | tolerance | status |"
    assert "+2" in text and "±5%" in text


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_value_never_passes(files, token):
    """Python's json reads NaN; a NaN FID compares as neither worse nor better."""
    base_path, _ = files
    path = write(make_record(), base_path.parent / "nan.json")
    path.write_text(path.read_text().replace('"value": 10.0', f'"value": {token}'))
    res = CliRunner().invoke(main, ["gate", str(path), "--baseline", str(base_path)])
    assert res.exit_code == 2, res.output
    assert res.stdout == "" and res.stderr.count("\n") == 1
    assert res.stderr.startswith("diffbench: error: ") and "metrics.fid.value is" in res.stderr
    # A record handed to the library directly is judged not comparable, never "improved".
    rec = make_record(fid=float(token.lower().replace("infinity", "inf")))
    verdict = gate(rec, init_baseline([make_record()]))
    assert verdict.exit_code == 3 and verdict.rows[0].status == "not comparable"


def test_a_non_finite_baseline_is_a_usage_error(tmp_path):
    path = write_baseline(init_baseline([make_record()]), tmp_path / "b.yaml")
    path.write_text(path.read_text().replace("value: 10.0", "value: .nan"))
    with pytest.raises(ConfigError, match="tasks.digits.metrics.fid: needs a finite numeric"):
        load_baseline(path)


def test_the_gate_notes_records_not_comparable_to_published_numbers():
    verdict = gate(make_record(smoke=True), init_baseline([make_record()]))
    assert any("not comparable to published numbers: smoke run" in n for n in verdict.notes)


def test_init_on_a_folder_of_several_models_keys_the_baseline_model_task(tmp_path):
    """`runs/demo` holds one run per model (demo-sit, toy) of the same task: `gate init` on it
    writes one entry per model, and `gate runs/demo --baseline X` compares each with its own."""
    runs = tmp_path / "runs" / "demo"
    for model, fid in (("demo-sit", 99.0), ("toy", 300.0)):
        write(make_record(fid=fid, model={"name": model, "args": {}}),
              runs / model / "results" / "digits.json")
    out = tmp_path / "baseline.yaml"
    runner = CliRunner()
    res = runner.invoke(main, ["gate", "init", str(runs), "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(out.read_text())
    assert list(data["tasks"]) == ["demo-sit/digits", "toy/digits"]
    assert data["tasks"]["toy/digits"]["metrics"]["fid"]["value"] == 300.0
    res = runner.invoke(main, ["gate", str(runs), "--baseline", str(out)])
    assert res.exit_code == 0 and "| demo-sit/digits/fid | 99 | 99 |" in res.stdout, res.output
    # the toy regresses; demo-sit does not: the verdict names the model
    write(make_record(fid=400.0, model={"name": "toy", "args": {}}),
          runs / "toy" / "results" / "digits.json")
    res = runner.invoke(main, ["gate", str(runs), "--baseline", str(out)])
    assert res.exit_code == 1 and "toy/digits/fid" in res.stdout
    assert res.stdout.count("regression (") == 1
    # one model's run against the per-model baseline: the other model's entry is missing
    res = runner.invoke(main, ["gate", str(runs / "demo-sit"), "--baseline", str(out)])
    assert res.exit_code == 3 and "task missing from current results" in res.stdout
    # a one-model baseline over a folder of several models: each record against its own
    # model's entries; the other model's run is noted, not gated
    single = tmp_path / "single.yaml"
    assert runner.invoke(main, ["gate", "init", str(runs / "toy"), "-o", str(single)]).exit_code == 0
    assert yaml.safe_load(single.read_text())["tasks"]["digits"]["model"] == "toy"
    write(make_record(fid=300.0, model={"name": "toy", "args": {}}),
          runs / "toy" / "results" / "digits.json")
    res = runner.invoke(main, ["gate", str(runs), "--baseline", str(single)])
    assert res.exit_code == 0 and "demo-sit/digits: not in the baseline" in res.stdout, res.output
    # another model's run alone against it: not comparable, saying whose baseline it is
    res = runner.invoke(main, ["gate", str(runs / "demo-sit"), "--baseline", str(single)])
    assert res.exit_code == 3, res.output
    assert "**not comparable:** digits: baseline is for toy, current results are demo-sit's" \
        in res.stdout and "regression" not in res.stdout
    # a baseline written before entries recorded their model: still read; one model's run is
    # gated as before, several models' runs of its task are a usage error saying why
    data = yaml.safe_load(single.read_text())
    del data["tasks"]["digits"]["model"]
    single.write_text(yaml.safe_dump(data))
    res = runner.invoke(main, ["gate", str(runs / "toy"), "--baseline", str(single)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["gate", str(runs), "--baseline", str(single)])
    assert res.exit_code == 2 and "results of several models" in res.stderr


@pytest.mark.parametrize("key,value", [("rel", ".inf"), ("rel", ".nan"), ("abs", ".inf"),
                                       ("abs", "-0.1"), ("rel", "true")])
def test_a_tolerance_must_be_finite_and_non_negative(tmp_path, key, value):
    """Fault 1 of issue 24: `rel: .inf` passed any regression."""
    base = init_baseline([make_record()])
    base["tasks"]["digits"]["metrics"]["fid"]["tolerance"] = {key: 0.05}
    path = write_baseline(base, tmp_path / "b.yaml")
    path.write_text(path.read_text().replace(f"{key}: 0.05", f"{key}: {value}"))
    results = write(make_record(fid=999999.0), tmp_path / "r.json")
    before = sorted(tmp_path.iterdir())
    res = CliRunner().invoke(main, ["gate", str(results), "--baseline", str(path)])
    assert res.exit_code == 2 and res.stdout == "" and res.stderr.count("\n") == 1, res.output
    assert f"tasks.digits.metrics.fid.tolerance.{key}: " in res.stderr
    assert "not a finite number >= 0" in res.stderr
    assert sorted(tmp_path.iterdir()) == before


def test_the_demo_folder_of_two_models_against_the_ci_baseline(tmp_path):
    """Issue 23: `gate runs/demo --baseline ci/demo-baseline.yaml` after `make demo` (runs of
    demo-sit and toy) gates demo-sit's run and notes the toy's; the toy alone is exit 3."""
    from pathlib import Path

    ci = Path(__file__).resolve().parent.parent / "ci" / "demo-baseline.yaml"
    base = load_baseline(ci)
    runs = tmp_path / "runs" / "demo"
    for model, worse in (("demo-sit", 1.0), ("toy", 3.0)):
        for task, spec in base["tasks"].items():
            metrics = {name: {"value": m["value"] * (worse if not m["higher_is_better"] else
                                                     1 / worse),
                              "higher_is_better": m["higher_is_better"],
                              **({"extractor": m["extractor"]} if "extractor" in m else {})}
                       for name, m in spec["metrics"].items()}
            write(new_record(kind="run", protocol=spec["protocol"], metrics=metrics,
                             counts=spec["counts"], task=task, suite=base["suite"],
                             model={"name": model, "args": {}}),
                  runs / model / "results" / f"{task}.json")
    runner = CliRunner()
    res = runner.invoke(main, ["gate", str(runs), "--baseline", str(ci)])
    assert res.exit_code == 0 and "gate: PASS" in res.stdout, res.output
    assert "toy/digits-sde-cfg: not in the baseline, not gated" in res.stdout
    res = runner.invoke(main, ["gate", str(runs / "toy"), "--baseline", str(ci)])
    assert res.exit_code == 3 and "baseline is for demo-sit" in res.stdout, res.output
    assert "REGRESSION" not in res.stdout and "regression (" not in res.stdout
