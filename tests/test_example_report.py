"""The committed example leaderboard `reports/demo/` is what the current code makes from the
demo runs kept beside it (`make example-report` rebuilds it after `make demo`)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "reports" / "demo"


def _script():
    spec = importlib.util.spec_from_file_location("example_report",
                                                  ROOT / "scripts" / "example_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_example_report_is_current(tmp_path, monkeypatch):
    script = _script()
    runs = script.committed_runs(EXAMPLE)
    assert [r.name for r in runs] == ["demo-sit", "toy"]
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    script.build(runs, tmp_path)
    for name in script.REPORT_FILES:
        assert (tmp_path / name).read_bytes() == (EXAMPLE / name).read_bytes(), (
            f"reports/demo/{name} is stale: run `make example-report` (or `python "
            "scripts/example_report.py --out reports/demo`) and commit the result")


def test_the_example_holds_the_demo_numbers_and_stays_small():
    md = (EXAMPLE / "report.md").read_text()
    record = json.loads((EXAMPLE / "runs/demo-sit/results/digits-sde-cfg.json").read_text())
    assert record["counts"]["scored"] == 500 and not record.get("smoke")
    fid = record["metrics"]["fid"]["value"]
    assert fid == pytest.approx(99.39, abs=0.05)  # the demo's recorded figure (test_demo)
    assert f"| demo-sit | {fid:.2f} |" in md and "| toy |" in md and "published:" in md
    assert "generated 20" in md  # dated by the records' creation time, not by the build
    size = sum(p.stat().st_size for p in EXAMPLE.rglob("*") if p.is_file())
    assert size < 300_000, size
