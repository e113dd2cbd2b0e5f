"""A task's generated images in a run directory: ``<key>.png`` and the manifest that describes them.

The sample folder of a task (``RUN/samples/<task>/``) holds one PNG per request key, per-part
manifests ``manifest.rank{p}.jsonl`` written while generating, ``plan.json`` (the planned keys) and
``manifest.jsonl`` (the merged, checked view). Each manifest line is a JSON object with ``key``,
``seed``, ``condition``, ``sampler``, ``sha256`` and, for task datasets, ``item`` (the dataset
item the image was generated for).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from diffbench.data.images import load_rgb
from diffbench.errors import DataError
from diffbench.log import logger


def read_manifest(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """Records of a JSONL manifest; a truncated last line is dropped (and cut off if `repair`)."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    *complete, tail = raw.split(b"\n")
    records = []
    for i, line in enumerate(complete):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise DataError(f"{path}: line {i + 1} is not JSON; the manifest is damaged, "
                            "delete it and rerun to rebuild it from the PNGs") from None
    if tail.strip():
        try:
            records.append(json.loads(tail))
            fix = b"\n"  # the line is whole, only its newline was lost
        except json.JSONDecodeError:
            fix = None
        if repair:
            logger.warning("%s: unfinished last line repaired", path)
            with open(path, "r+b") as fh:
                fh.truncate(len(raw) if fix else len(raw) - len(tail))
                fh.seek(0, os.SEEK_END)
                fh.write(fix or b"")
    return records


class SampleSet:
    """The generated images of one task, in key order, with their manifest records."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        manifest = self.folder / "manifest.jsonl"
        if not manifest.is_file():
            raise DataError(f"{self.folder}: no manifest.jsonl; generate the task first "
                            "(diffbench generate/run), or run `diffbench merge` after sharded jobs")
        records = read_manifest(manifest)
        if not records:
            raise DataError(f"{manifest}: the manifest lists no images")
        self.records = {r["key"]: r for r in records}
        self.keys = sorted(self.records)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> np.ndarray:
        return load_rgb(self.path(self.keys[i]))

    def path(self, key: str) -> Path:
        """The PNG of a key."""
        return self.folder / f"{key}.png"

    def condition(self, key: str) -> dict[str, Any]:
        """The condition the image of `key` was generated for."""
        return self.records[key].get("condition") or {}

    def item_key(self, key: str) -> str | None:
        """The dataset item the image of `key` belongs to (None for class/none tasks)."""
        return self.records[key].get("item")

    def describe(self) -> dict[str, Any]:
        """What the results record says about this set."""
        return {"kind": "samples", "path": str(self.folder.resolve()), "n": len(self),
                "content_sha256": self.content_hash()}

    def content_hash(self) -> str:
        """sha256 over the keys and the recorded sha256 of every PNG."""
        h = hashlib.sha256()
        for key in self.keys:
            h.update(f"{key}\0{self.records[key]['sha256']}\n".encode())
        return h.hexdigest()
