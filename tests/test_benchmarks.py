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


@pytest.mark.slow
@pytest.mark.procs  # a process per metric and side (peak memory of each)
def test_bench_dgm_eval_runs_both_codes_on_the_same_numbers():
    out = subprocess.run([sys.executable, str(BENCH / "bench_dgm_eval.py"), "--n", "80", "--dim",
                          "16", "--metrics", "fd_eff,authpct,sw_approx"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {ln.split()[0]: ln.split() for ln in out.stdout.splitlines()[2:-1]}
    assert set(rows) == {"fd_eff", "authpct", "sw_approx"}
    for cells in rows.values():  # diffbench's value, the reference's value (6 significant digits)
        assert cells[1] == cells[2], cells
    bad = subprocess.run([sys.executable, str(BENCH / "bench_dgm_eval.py"), "--metrics", "fid"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown metric" in bad.stderr
