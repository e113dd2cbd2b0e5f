"""Generation in real processes: SIGKILL mid-run then resume, and torchrun with 2 ranks (gloo)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests._faults import torchrun
from tests.test_generate import png_set, write_suite

pytestmark = pytest.mark.procs  # every test here starts Python processes

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cmd(suite: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "diffbench", "-q", "generate", str(suite), "--model", "toy",
            "--batch-size", "2", "--out", str(out), *extra]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    suite = write_suite(tmp_path)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_cmd(suite, ref), check=True, env=ENV, capture_output=True)
    proc = subprocess.Popen(_cmd(suite, killed, "--model-arg", "delay=0.15"), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sample_dir = killed / "samples/cls"
    deadline = time.monotonic() + 30
    while len(list(sample_dir.glob("*.png"))) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(list(sample_dir.glob("*.png")))
    assert 5 <= partial < 15, "the kill should land mid-run"
    # the same command (delay is a model argument, part of the store's fingerprint)
    subprocess.run(_cmd(suite, killed, "--model-arg", "delay=0.15"), check=True, env=ENV,
                   capture_output=True)
    assert png_set(sample_dir) == png_set(ref / "samples/cls")
    assert (sample_dir / "manifest.jsonl").read_bytes() == \
        (ref / "samples/cls/manifest.jsonl").read_bytes()
    assert not [p for p in sample_dir.iterdir() if ".tmp" in p.name]


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process(tmp_path):
    suite = write_suite(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(_cmd(suite, one), check=True, env=ENV, capture_output=True)
    run = torchrun(2, "-m", *_cmd(suite, two)[2:])
    res = subprocess.run(run, env=ENV, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    samples = two / "samples/cls"
    assert sorted(p.name for p in samples.glob("manifest.rank*.jsonl")) == \
        ["manifest.rank0.jsonl", "manifest.rank1.jsonl"]
    assert png_set(samples) == png_set(one / "samples/cls")
    assert (samples / "manifest.jsonl").read_bytes() == \
        (one / "samples/cls/manifest.jsonl").read_bytes()


DRIVER = """
import numpy as np
from diffbench import dist
dist.init_from_env("cpu")
r = dist.rank()
out = dist.gather_objects({"s": np.full(3, r + 1, dtype=np.float64), "r": r})
from diffbench.scoring.base import merge_ranks
rows = merge_ranks({"rows": np.full((1, 2), r, np.int64), "n": r + 1},
                   {"rows": "cat", "n": "sum"}, [1 - r], 2)
dist.barrier()
assert dist.world_size() == 2 and dist.is_main() == (r == 0)
assert [o["r"] for o in out] == [0, 1] and out[1]["s"].tolist() == [2.0, 2.0, 2.0], out
assert rows["rows"].tolist() == [[1, 1], [0, 0]] and rows["n"] == 3, rows
"""


@pytest.mark.slow
def test_torchrun_gather(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    run = torchrun(2, script)
    res = subprocess.run(run, env=ENV, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]


SIT_SUITE = """\
name: sit
version: 1
tasks:
  cls:
    kind: generate
    condition: class
    generation:
      images_per_condition: 2
      seed: 3
      sampler: {num_classes: 10, mode: sde, steps: 10, cfg_scale: 2.0,
                guidance_interval: [0.0, 0.7]}
    protocol: adm
    metrics: {fid: {}}
"""


def _sit_cmd(suite: Path, out: Path, ckpt: str, batch: int) -> list[str]:
    return ["-m", "diffbench", "-q", "generate", str(suite), "--model", "sit-repa",
            "--model-arg", f"ckpt={ckpt}", "--model-arg", "heads=1", "--model-arg", "vae=none",
            "--batch-size", str(batch),
            "--out", str(out)]


@pytest.mark.slow
def test_sit_repa_torchrun_png_bytes_equal_one_process(tmp_path):
    """20 SDE+CFG samples of a random SiT: 2 gloo ranks and 1 process, same per-process batch."""
    from tests.test_sit_adapter import PIXEL, save_random_sit

    ckpt = save_random_sit(tmp_path / "sit.safetensors", PIXEL)
    suite = tmp_path / "sit.yaml"
    suite.write_text(SIT_SUITE)
    one, two, single = tmp_path / "one", tmp_path / "two", tmp_path / "single"
    subprocess.run([sys.executable, *_sit_cmd(suite, one, ckpt, 3)], check=True, env=ENV,
                   capture_output=True)
    run = torchrun(2, *_sit_cmd(suite, two, ckpt, 3))
    res = subprocess.run(run, env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    ref = png_set(one / "samples/cls")
    assert len(ref) == 20 and png_set(two / "samples/cls") == ref
    assert (two / "samples/cls/manifest.jsonl").read_bytes() == \
        (one / "samples/cls/manifest.jsonl").read_bytes()
    subprocess.run([sys.executable, *_sit_cmd(suite, single, ckpt, 1)], check=True, env=ENV,
                   capture_output=True)
    for name, data in png_set(single / "samples/cls").items():  # batch 1 vs 3: at most 1 level
        a = np.asarray(Image.open(io.BytesIO(data))).astype(int)
        b = np.asarray(Image.open(io.BytesIO(ref[name]))).astype(int)
        assert np.abs(a - b).max() <= 1, name
