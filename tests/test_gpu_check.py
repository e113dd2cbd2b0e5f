"""benchmarks/gpu_check.py: one line and exit 2 without CUDA, a table on the CPU (tiny sizes),
and its device-vs-CPU bounds hold for features perturbed as a device would perturb them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffbench.metrics import functional as F

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_one_line_and_exit_2():
    out = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "no CUDA device" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


@pytest.mark.slow
def test_runs_on_the_cpu_with_small_sizes():
    out = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--small"],
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    table = out.stdout.splitlines()
    assert table[0].split()[:3] == ["check", "cpu", "cpu"]
    names = " ".join(table)
    for what in ("demo run", "score fid", "score kid", "score isc", "score fd_dinov2",
                 "score coverage", "bfloat16", "float32"):
        assert what in names
    assert all(line.endswith("yes") for line in table[1:-1])


def _perturbed(seed: int, n: int = 40, d: int = 16, scale: float = 1e-3):
    rng = np.random.RandomState(seed)
    r = np.abs(rng.standard_normal((n, d)))
    f = np.abs(rng.standard_normal((n, d))) + 0.3
    return r, r + scale * rng.standard_normal(r.shape), f, f + scale * rng.standard_normal(f.shape)


@pytest.mark.parametrize("seed", range(5))
def test_the_bounds_hold_for_perturbed_features(seed):
    gc = _module()
    r, r2, f, f2 = rows = _perturbed(seed)

    def fd(a, b):
        return F.frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0),
                                  np.cov(b, rowvar=False))

    base = fd(r, f)
    assert abs(fd(r2, f2) - base) <= gc._fd_bound(base, rows)
    kid = F.kid(f, r, 10, 40, 0, dtype=np.float64)[0]
    assert abs(F.kid(f2, r2, 10, 40, 0, dtype=np.float64)[0] - kid) <= gc._kid_bound(kid, rows)
    logits, logits2 = 3 * r, 3 * r2
    isc = F.inception_score(logits, splits=1)[0]
    assert abs(F.inception_score(logits2, splits=1)[0] - isc) <= gc._is_bound(isc,
                                                                                 (logits, logits2))
    a, b = F.prdc(r, f, nearest_k=5), F.prdc(r2, f2, nearest_k=5)
    assert max(abs(a[k] - b[k]) for k in a) <= gc._prdc_bound(rows)
