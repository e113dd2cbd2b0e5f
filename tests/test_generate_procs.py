"""Generation in real processes: SIGKILL mid-run then resume, and torchrun with 2 ranks (gloo)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_generate import png_set, write_suite

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
    subprocess.run(_cmd(suite, killed), check=True, env=ENV, capture_output=True)
    assert png_set(sample_dir) == png_set(ref / "samples/cls")
    assert (sample_dir / "manifest.jsonl").read_bytes() == \
        (ref / "samples/cls/manifest.jsonl").read_bytes()
    assert not [p for p in sample_dir.iterdir() if ".tmp" in p.name]


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process(tmp_path):
    suite = write_suite(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(_cmd(suite, one), check=True, env=ENV, capture_output=True)
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", "29517", "-m", *_cmd(suite, two)[2:]]
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
out = dist.all_reduce_sum({"s": np.full(3, r + 1, dtype=np.float64), "n": np.array([r], np.int64)})
dist.barrier()
assert dist.world_size() == 2 and dist.is_main() == (r == 0)
assert out["s"].tolist() == [3.0, 3.0, 3.0] and out["n"].tolist() == [1], out
"""


@pytest.mark.slow
def test_torchrun_all_reduce_sum(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", "29518", str(script)]
    res = subprocess.run(run, env=ENV, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
