"""The memorization gallery: the generated images closest to a training image, beside it.

A run scored with ``ct`` (`diffbench.metrics.memorization_specs`) records its ``closest``
generated images: each one's key and file, its nearest training image's key and file, and the
distance between their features. One row per pair, nearest first, at most `MAX_ROWS` per run;
the generated file is looked for where the record says, then in the run's sample folder (a
moved run), the training file where the record says. Missing files show as a gap with a note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffbench.report.gallery import THUMB, Gallery, thumbnail

MAX_ROWS = 16
COLUMNS = ["generated", "nearest training image"]


def pairs_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The recorded closest (generated, training) pairs of a record, nearest first."""
    entry = (record.get("metrics") or {}).get("ct") or {}
    return list((entry.get("details") or {}).get("closest") or [])


def _file(pair: dict[str, Any], side: str, folder: Path | None) -> Path | None:
    path = pair.get(f"{side}_path")
    if not isinstance(path, str):
        return None
    found = Path(path)
    return folder / found.name if not found.is_file() and folder is not None else found


def memorization_gallery(runs: list[tuple[str, dict[str, Any], Path | None]],
                         max_rows: int = MAX_ROWS, size: int = THUMB) -> Gallery | None:
    """The gallery of one task over its runs: (label, record, sample folder) each; None when
    no run recorded closest pairs."""
    gallery = Gallery(list(COLUMNS))
    missing = 0
    for label, record, folder in runs:
        for pair in pairs_of(record)[:max_rows]:
            files = (_file(pair, "fake", folder), _file(pair, "train", None))
            cells = [thumbnail(f, size) for f in files]
            missing += sum(c is None for c in cells)
            text = (f"{label} · training image {pair.get('train_key', pair.get('train'))} · "
                    f"distance {float(pair.get('distance', float('nan'))):.4g}")
            gallery.rows.append((str(pair.get("fake_key", pair.get("fake"))), text, cells))
    if not gallery.rows:
        return None
    if missing:
        gallery.notes.append(f"{missing} image(s) missing or unreadable")
    return gallery
