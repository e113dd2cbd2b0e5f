"""Sample galleries: a few thumbnails per task, one column per run, embedded as data URIs.

A run's sample folder (``inputs.fake.path`` of its results record) holds ``<key>.png`` and
``manifest.jsonl`` (key, seed, condition, …). A gallery row is one sample key: its caption comes
from the condition (class, prompt, or try-on file names), then the result of every run. Try-on
rows show person | garment | results | ground truth (the person image, in paired mode). Missing or
unreadable files are skipped with a note, never an error; notes and captions name files by their
base names, never by local absolute paths. Thumbnails are downscaled (≤ 96 px) and bounded in
number so the page stays small.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from diffbench.data.base import KEY_PATTERN
from diffbench.data.samples import read_manifest
from diffbench.errors import DataError
from diffbench.report.table import hide_paths

THUMB = 96
MAX_ROWS = 6
MAX_RUNS = 8
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
CAPTION_CHARS = 160


@dataclass(frozen=True)
class Run:
    """One column of a gallery: a label and the run's sample folder."""

    label: str
    folder: Path
    paired: bool = False


@dataclass
class Gallery:
    """Column headers, rows of (key, caption, data-URI or None per column), notes."""

    columns: list[str]
    rows: list[tuple[str, str, list[str | None]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def thumbnail(path: Path | None, size: int = THUMB) -> str | None:
    """A downscaled copy of an image file as a data URI (None when missing or unreadable)."""
    if path is None or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
        return None
    try:
        with Image.open(path) as im:
            im.draft("RGB", (size, size))  # JPEG: decode at reduced size
            img = im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    # Tiny images (digits) stay lossless; photos compress far better as JPEG.
    mime, quality = ("png", {}) if max(img.size) <= 48 else ("jpeg", {"quality": 80})
    img.save(buf, format=mime.upper(), optimize=True, **quality)
    return f"data:image/{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def caption(condition: Any) -> str:
    """A short text for a condition: the prompt, the class, try-on file names, else JSON."""
    if not isinstance(condition, dict) or not condition:
        return ""
    if "prompt" in condition:
        text = str(condition["prompt"])
    elif "class" in condition:
        text = f"class {condition['class']}"
    elif "person" in condition and "garment" in condition:
        text = f"{Path(str(condition['person'])).name} + {Path(str(condition['garment'])).name}"
    else:
        text = json.dumps(hide_paths(condition), sort_keys=True, default=str)
    return text if len(text) <= CAPTION_CHARS else text[:CAPTION_CHARS - 1] + "…"


def _samples(run: Run, notes: list[str]) -> dict[str, tuple[dict[str, Any], Path]]:
    """key → (manifest record, image path); a folder without manifest gives its image files."""
    if not run.folder.is_dir():
        what = "is not a folder of images" if run.folder.exists() else "not found"
        notes.append(f"{run.label}: samples {run.folder.name} {what}; no thumbnails")
        return {}
    try:
        records = read_manifest(run.folder / "manifest.jsonl")
    except DataError as exc:
        notes.append(f"{run.label}: {hide_paths(str(exc))}")
        records = []
    # Keys name files in the folder: only plain stems, never paths.
    if not records:
        return {p.stem: ({"key": p.stem}, p) for p in sorted(run.folder.iterdir())
                if p.suffix.lower() in IMAGE_SUFFIXES and KEY_PATTERN.match(p.stem)}
    return {str(r["key"]): (r, run.folder / f"{r['key']}.png") for r in records
            if isinstance(r, dict) and KEY_PATTERN.match(str(r.get("key", "")))}


def _tryon(record: dict[str, Any] | None) -> bool:
    cond = (record or {}).get("condition")
    return isinstance(cond, dict) and "person" in cond and "garment" in cond


def says_paired(block: dict[str, Any] | None) -> bool:
    """A condition or dataset block in paired mode (``paired: true``, or pairing/mode paired)."""
    block = block or {}
    return block.get("paired") is True or "paired" in (block.get("pairing"), block.get("mode"))


def _pick_keys(per_run: list[dict[str, Any]], max_rows: int) -> list[str]:
    """Sample keys to show: one per condition first (several images of one class or prompt
    come after every condition had its turn), from the first runs that have samples."""
    order: list[tuple[int, str]] = []
    for samples in per_run:
        seen: dict[str, int] = {}
        for key in sorted(samples):
            record = samples[key][0]
            what = json.dumps(record.get("item", record.get("condition")), sort_keys=True,
                              default=str)
            seen[what] = seen.get(what, -1) + 1
            order.append((seen[what], key))
        if len(order) >= max_rows:
            break
    return list(dict.fromkeys(key for _, key in sorted(order)))[:max_rows]


def task_gallery(runs: list[Run], max_rows: int = MAX_ROWS, max_runs: int = MAX_RUNS,
                 size: int = THUMB) -> Gallery:
    """The gallery of one task over several runs (same keys side by side)."""
    notes: list[str] = []
    if len(runs) > max_runs:
        notes.append(f"showing the first {max_runs} of {len(runs)} runs")
        runs = runs[:max_runs]
    per_run = [_samples(run, notes) for run in runs]
    keys = _pick_keys(per_run, max_rows)
    first = [next((s[k][0] for s in per_run if k in s), None) for k in keys]
    tryon = any(_tryon(r) for r in first)
    paired = tryon and (any(run.paired for run in runs)
                        or any(says_paired((r or {}).get("condition")) for r in first))
    columns = (["person", "garment"] if tryon else []) + [r.label for r in runs]
    columns += ["ground truth"] if paired else []
    gallery = Gallery(columns, notes=notes)
    missing: list[str] = []
    for key, record in zip(keys, first, strict=True):
        cond = (record or {}).get("condition") or {}
        paths: list[Path | None] = []
        if tryon:
            paths += [Path(str(cond.get("person", ""))), Path(str(cond.get("garment", "")))]
        paths += [samples[key][1] if key in samples else None for samples in per_run]
        if paired:
            paths.append(Path(str(cond.get("person", ""))))
        cells = [thumbnail(p, size) for p in paths]
        missing += [p.name for p, c in zip(paths, cells, strict=True) if p is not None and c is None]
        gallery.rows.append((key, caption(cond), cells))
    if missing:
        gallery.notes.append(f"{len(missing)} image(s) missing or unreadable, e.g. {missing[0]}")
    return gallery
