"""The offline demo suite (`make demo`): shipped weights, their training record, the CI baseline."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from diffbench.cli import main
from diffbench.features.digits import ASSETS
from diffbench.fsutil import file_sha256
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


# sha256 over the keys and PNG hashes of the 500 demo images (SampleSet.content_hash) as
# `diffbench run` makes them on the machine the training record comes from (x86-64 AMD EPYC,
# AVX2, 2 threads, torch 2.14.1 CPU wheel with oneDNN): FID 99.39246, accuracy 0.894 there.
RECORDED_IMAGES = "30cc688142be80b9e4869e3b96c30e0bcf908b295ce41b5fdfd0fda5ed57ec4d"


@pytest.mark.slow
def test_demo_run_reproduces_the_training_record(demo_run):
    """The run (diffbench's scorer) lands on what the training script measured with its own code."""
    record = json.loads((demo_run / "results/digits-sde-cfg.json").read_text())
    point = next(s for s in RECORD["evaluation"]["sweep"]
                 if s["sampler"] == {k: record["sampler"][k] for k in s["sampler"]})
    row = next(e for p in all_published() if p.suite == "demo" for e in p.entries)
    assert row.metrics == {"fid": point["fd_digits64_vs_test"],
                           "accuracy": point["class_accuracy"]}
    # 40 SDE steps with the interval [0, 0.7]: 27 guided (doubled batch) and 13 unguided
    assert record["generation"]["model_evaluations"] == {
        "guided_nfe": 27, "unguided_nfe": 13, "nfe": 40, "model_rows_per_image": 67}
    if record["inputs"]["fake"]["content_sha256"] != RECORDED_IMAGES:
        # The sampler's float32 kernels round differently on this CPU (another ISA or oneDNN
        # kernel): some pixels land one grey level off, so the images, and the numbers, are not
        # the recorded ones. No rounding bound carries over 500 images x 40 network calls;
        # test_demo_run_passes_the_ci_baseline holds them to the gate's tolerance instead.
        pytest.skip("the demo images differ from the recording machine's (float32 kernels)")
    # The same images: the training script's numbers are reproduced up to the record's rounding
    # (FD kept to 3 decimals, +-5e-4; asserted at 1e-3, the other half being headroom, not a
    # derived bound, for the classifier's float32 rounding on this machine) and the accuracy
    # exactly (k/500 has 3 decimals, the record keeps 4; no prediction flips at this headroom).
    metrics = record["metrics"]
    assert metrics["fid"]["value"] == pytest.approx(point["fd_digits64_vs_test"], abs=1e-3)
    assert metrics["accuracy"]["value"] == pytest.approx(point["class_accuracy"], abs=1e-9)


@pytest.mark.slow
def test_demo_run_passes_the_ci_baseline(demo_run):
    res = CliRunner().invoke(main, ["gate", str(demo_run), "--baseline",
                                    str(ROOT / "ci/demo-baseline.yaml")])
    assert res.exit_code == 0, res.output
    assert "gate: PASS" in res.output


SMALL = ["--set", "tasks.digits-sde-cfg.generation.images_per_condition=12"]  # 120 of 500 keys
SMALL_N = 120


def _run_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "diffbench", "-q", "run", str(ROOT / "suites/demo.yaml"),
            "--model", "demo-sit", "--out", str(out), *SMALL]


def _uninterrupted_small(demo_run: Path, out: Path) -> dict:
    """The small command's record on the uninterrupted run's own images: the store's fingerprint
    and the first 12 keys per class copied from `demo_run` (a key's pixels do not depend on the
    number of images, README, Generation), adopted by the run, which then only scores."""
    src, dst = demo_run / "samples/digits-sde-cfg", out / "samples/digits-sde-cfg"
    dst.mkdir(parents=True)
    shutil.copy(src / "store.json", dst / "store.json")
    for png in src.glob("c*_0[01][0-9].png"):
        if int(png.stem.rsplit("_", 1)[1]) < SMALL_N // 10:
            shutil.copy(png, dst / png.name)
    res = CliRunner().invoke(main, ["-q", "run", str(ROOT / "suites/demo.yaml"), "--model",
                                    "demo-sit", "--out", str(out), *SMALL])
    assert res.exit_code == 0, res.output
    record = json.loads((out / "results/digits-sde-cfg.json").read_text())
    assert record["generation"]["made_now"] == 0
    return record


@pytest.mark.slow
@pytest.mark.procs
def test_sigkilled_and_resumed_demo_equals_the_uninterrupted_run(demo_run, tmp_path):
    """`make demo`'s run (120 of its 500 images: the mechanism, not the size, is under test)
    killed for real mid-generation, then again before scoring, then rerun: the same counts,
    images and values as the uninterrupted run's images give."""
    out = tmp_path / "demo-sit"
    cmd = _run_cmd(out)
    env = {**os.environ, "DIFFBENCH_NO_PROGRESS": "1"}
    store = out / "samples" / "digits-sde-cfg"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 1800
    while len(list(store.glob("*.png"))) < 24 and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 24 <= len(list(store.glob("*.png"))) < SMALL_N, "the kill should land mid-generation"
    killed = subprocess.run(cmd, env={**env, "DIFFBENCH_FAULT": "before-score"},
                            capture_output=True, text=True, timeout=3600)
    assert killed.returncode == -signal.SIGKILL and not (out / "results").exists()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stderr[-2000:]
    resumed = json.loads((out / "results/digits-sde-cfg.json").read_text())
    whole = _uninterrupted_small(demo_run, tmp_path / "uninterrupted")
    assert resumed["counts"] == whole["counts"] == {
        **json.loads((demo_run / "results/digits-sde-cfg.json").read_text())["counts"],
        "planned": SMALL_N, "generated": SMALL_N, "scored": SMALL_N}
    assert resumed["generation"]["made_now"] == 0 and resumed["generation"]["skipped"] == SMALL_N
    ref_dir = tmp_path / "uninterrupted/samples/digits-sde-cfg"
    ref = {p.name: p.read_bytes() for p in ref_dir.glob("*.png")}
    now = {p.name: p.read_bytes() for p in store.glob("*.png")}
    assert sorted(now) == sorted(ref) and len(now) == SMALL_N
    # The resume cuts its batches elsewhere; batched float kernels may then round one grey level
    # differently (README, Generation). Identical images must give identical values.
    differ = [k for k in ref if now[k] != ref[k]]
    for key in differ:
        a = np.asarray(Image.open(store / key), dtype=int)
        b = np.asarray(Image.open(ref_dir / key), dtype=int)
        assert np.abs(a - b).max() <= 1, key
    if not differ:
        assert resumed["inputs"]["fake"]["content_sha256"] == \
            whole["inputs"]["fake"]["content_sha256"]
        assert {k: v["value"] for k, v in resumed["metrics"].items()} == \
            {k: v["value"] for k, v in whole["metrics"].items()}
