"""The committed example leaderboard, `reports/demo/`: the report of `make demo`'s two runs.

    python scripts/example_report.py runs/demo/demo-sit runs/demo/toy --out reports/demo
    python scripts/example_report.py --out reports/demo          # rebuild from the committed runs

With run folders, their inputs are copied into ``OUT/runs/<model>/``: the results records
(``inputs.fake.path`` made relative to the copy) and, of the samples, only the first image of
each condition with its manifest lines (the gallery shows one image per condition first; 32×32
digits, a few hundred bytes each). Then the report is built from the copies with
``SOURCE_DATE_EPOCH`` = the newest record's creation time, so the same runs always give the same
bytes, and compared with the report built from the full run folders: they must be identical, or
the example would not be the demo's report. Without run folders it only rebuilds from the copies
(`tests/test_example_report.py` does that and compares with the committed files).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from diffbench import results
from diffbench.report.build import ReportFiles, build_report
from diffbench.report.collect import collect

TITLE = "diffbench demo: an example leaderboard (make demo)"
REPORT_FILES = ("report.csv", "report.md", "index.html")


def epoch(run_dirs: list[Path]) -> int:
    """The newest `created` time of the runs' records, in seconds since 1970 (UTC)."""
    stamps = [datetime.fromisoformat(results.read(p)["created"]) for p in collect(run_dirs)]
    return int(max(stamps).timestamp())


def build(run_dirs: list[Path], out: Path) -> ReportFiles:
    """The report of `run_dirs` in `out`, dated by the records (byte-reproducible)."""
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch(run_dirs))
    try:
        return build_report(run_dirs, out, published=True, title=TITLE, include=[])
    finally:
        if old is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old


def _first_of_each_condition(manifest: Path) -> list[dict]:
    seen, out = set(), []
    for line in manifest.read_text().splitlines():
        rec = json.loads(line)
        what = json.dumps(rec.get("item", rec.get("condition")), sort_keys=True)
        if what not in seen:
            seen.add(what)
            out.append(rec)
    return out


def copy_inputs(run_dir: Path, dest: Path) -> None:
    """A run's records and the first image of each condition, under `dest` (replaced)."""
    shutil.rmtree(dest, ignore_errors=True)
    for file in collect([run_dir]):
        record = results.read(file)
        fake = (record.get("inputs") or {}).get("fake") or {}
        samples = Path(fake["path"])
        fake["path"] = f"samples/{samples.name}"
        results.write(record, dest / "results" / file.name)
        kept = _first_of_each_condition(samples / "manifest.jsonl")
        (dest / "samples" / samples.name).mkdir(parents=True)
        for rec in kept:
            shutil.copy(samples / f"{rec['key']}.png", dest / "samples" / samples.name)
        text = "".join(json.dumps(rec, sort_keys=True) + "\n" for rec in kept)
        (dest / "samples" / samples.name / "manifest.jsonl").write_text(text)


def committed_runs(out: Path) -> list[Path]:
    """The run folders copied into an example report folder."""
    return sorted(p for p in (out / "runs").iterdir() if p.is_dir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run folders of `make demo`")
    parser.add_argument("--out", type=Path, default=Path("reports/demo"))
    args = parser.parse_args(argv)
    if args.runs:
        for run in args.runs:
            copy_inputs(run, args.out / "runs" / run.name)
    files = build(committed_runs(args.out), args.out)
    if args.runs:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["SOURCE_DATE_EPOCH"] = str(epoch(committed_runs(args.out)))
            build_report(list(args.runs), Path(tmp), published=True, title=TITLE, include=[])
            for name in REPORT_FILES:
                if (Path(tmp) / name).read_bytes() != (args.out / name).read_bytes():
                    print(f"{name}: the copies do not give the full runs' report", file=sys.stderr)
                    return 1
    print(f"{files.rows} rows -> {files.csv}, {files.markdown}, {files.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
