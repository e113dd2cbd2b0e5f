"""Find results files: given files pass through, run folders give their per-task records."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from diffbench.errors import ResultsError


def collect(paths: Iterable[Path]) -> list[Path]:
    """Results files from files and run folders.

    A run folder contributes ``results/*.json`` (one per task) or else its ``results.json``; a
    folder that is not a run is searched for runs below it.
    """
    paths = list(paths)
    found = [f for path in paths for f in (_run_files(path) if path.is_dir() else [path])]
    if not found:
        raise ResultsError(f"no results files found in {', '.join(str(p) for p in paths)}; "
                           "pass results JSON files or run folders")
    return list(dict.fromkeys(found))


def _run_files(folder: Path) -> list[Path]:
    per_task = folder / "results"
    if per_task.is_dir():
        files = sorted(p for p in per_task.glob("*.json") if not p.name.startswith("."))
        if files:
            return files
    if (folder / "results.json").is_file():
        return [folder / "results.json"]
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [f for sub in subfolders for f in _run_files(sub)]
