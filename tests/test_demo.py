"""The offline demo suite (`make demo`): shipped weights, their training record, the CI baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffbench.cli import main
from diffbench.features.digits import ASSETS, file_sha256
from diffbench.published import all_published

ROOT = Path(__file__).resolve().parent.parent
RECORD = json.loads((ASSETS / "digits_sit.json").read_text())


def test_shipped_weights_are_the_recorded_ones():
    assert file_sha256(ASSETS / "digits_sit.safetensors") == RECORD["sha256"]
    assert RECORD["training"]["steps"] == 4000 and RECORD["training"]["seed"] == 0


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo-sit"
    res = CliRunner().invoke(main, ["-q", "run", str(ROOT / "suites/demo.yaml"),
                                    "--model", "demo-sit", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.slow
def test_demo_run_reproduces_the_training_record(demo_run):
    """The run (diffbench's scorer) lands on what the training script measured with its own code."""
    record = json.loads((demo_run / "results/digits-sde-cfg.json").read_text())
    point = next(s for s in RECORD["evaluation"]["sweep"]
                 if s["sampler"] == {k: record["sampler"][k] for k in s["sampler"]})
    metrics = record["metrics"]
    assert metrics["fid"]["value"] == pytest.approx(point["fd_digits64_vs_test"], abs=1e-3)
    assert metrics["accuracy"]["value"] == pytest.approx(point["class_accuracy"], abs=1e-9)
    row = next(e for p in all_published() if p.suite == "demo" for e in p.entries)
    assert row.metrics == {"fid": point["fd_digits64_vs_test"],
                           "accuracy": point["class_accuracy"]}
    # 40 SDE steps with the interval [0, 0.7]: 27 guided (doubled batch) and 13 unguided
    assert record["generation"]["model_evaluations"] == {
        "guided_nfe": 27, "unguided_nfe": 13, "nfe": 40, "model_rows_per_image": 67}


@pytest.mark.slow
def test_demo_run_passes_the_ci_baseline(demo_run):
    res = CliRunner().invoke(main, ["gate", str(demo_run), "--baseline",
                                    str(ROOT / "ci/demo-baseline.yaml")])
    assert res.exit_code == 0, res.output
    assert "gate: PASS" in res.output
