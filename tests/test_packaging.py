"""What `pip install diffbench` gets: the package list, and a wheel installed into a fresh
virtual environment (no editable install, not run from the checkout) that works on its own."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.stem for p in (ROOT / "suites").glob("*.yaml") if not p.stem.startswith("_"))


def _setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_folder_of_the_package_is_listed():
    """The package list is explicit (it maps suites/ and reference_stats/ into the package), so
    a new sub-package must be added to it: every folder holding files is there."""
    config = _setuptools_config()
    listed = set(config["packages"])
    mapped = config["package-dir"]
    assert mapped == {"diffbench.suites": "suites", "diffbench.reference_stats": "reference_stats"}
    found = {"diffbench." + ".".join(d.relative_to(ROOT / "diffbench").parts) if d != ROOT /
             "diffbench" else "diffbench"
             for d in (ROOT / "diffbench").rglob("*") if d.is_dir() and d.name != "__pycache__"
             and any(f.is_file() for f in d.iterdir())}
    found.add("diffbench")
    assert listed == found | set(mapped)
    for package, folder in mapped.items():
        assert (ROOT / folder).is_dir() and config["package-data"][package] == ["*.yaml"]


def _build_wheel(tmp: Path) -> Path:
    """Build the wheel from a copy of the sources with the installed setuptools (no network)."""
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("diffbench", "suites", "reference_stats"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = tmp / "dist"
    code = "import sys, setuptools.build_meta as b; print(b.build_wheel(sys.argv[1]))"
    res = subprocess.run([sys.executable, "-c", code, str(out)], cwd=src, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "project.license" not in res.stderr  # an SPDX string: no deprecation warning
    return out / res.stdout.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.procs
def test_the_wheel_works_in_a_fresh_environment(tmp_path):
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run([venv / "bin" / "pip", "install", "-q", "--no-deps", "--no-index",
                          str(wheel)], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    work = tmp_path / "elsewhere"  # outside the checkout: nothing is read from it
    work.mkdir()
    # The dependencies come from this environment's site-packages; .pth files on PYTHONPATH
    # are not processed, so its editable diffbench (if any) is not picked up.
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"],
           "DIFFBENCH_HOME": str(tmp_path / "home"), "DIFFBENCH_CONFIG": str(tmp_path / "c.yaml"),
           "OMP_NUM_THREADS": "1", "DIFFBENCH_NO_PROGRESS": "1"}
    env.pop("DIFFBENCH_INCLUDE_PATH", None)

    def diffbench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(venv / "bin" / "diffbench"), *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=1800)

    where = subprocess.run([venv / "bin" / "python", "-c", "import diffbench; print(diffbench."
                            "__file__)"], cwd=work, env=env, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr
    listing = diffbench("suites", "list")
    assert listing.returncode == 0, listing.stderr
    names = [x.split()[0] for x in listing.stdout.splitlines() if x and not x.startswith(" ")]
    assert names == SHIPPED and listing.stdout.count("(shipped)") == len(SHIPPED)
    assert str(venv) in diffbench("suites", "show", "vitonhd").stdout.splitlines()[0]
    run = diffbench("run", "demo", "--model", "demo-sit", "--out", "runs/demo-sit", "--set",
                    "tasks.digits-sde-cfg.generation.images_per_condition=2")
    assert run.returncode == 0, run.stderr[-3000:]
    report = diffbench("report", "runs/demo-sit", "-o", "report")
    assert report.returncode == 0, report.stderr[-3000:]
    with open(work / "report" / "report.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    published = [r for r in rows if r["origin"] == "published"]
    assert {r["metric"] for r in published} == {"fid", "accuracy"}  # reference_stats/demo.yaml
    assert {r["origin"] for r in rows} == {"published", "measured"}
    assert not (work / "suites").exists() and not list(work.glob("*.yaml"))
