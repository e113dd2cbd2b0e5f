"""The speed benchmarks still run against the current API (tiny sizes; figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow
@pytest.mark.procs
def test_bench_score_runs_both_libraries_on_the_same_numbers(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "bench_score.py"), "--n", "12", "--size",
                          "64", "--metrics", "fid,isc", "--dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    ours = next(ln for ln in lines if ln.startswith("diffbench"))
    peer = next(ln for ln in lines if ln.startswith("torch-fidelity"))
    assert ours.split("fid=")[1][:6] == peer.split("fid=")[1][:6]
    assert "speed ratio" in lines[-1]
