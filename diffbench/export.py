"""`diffbench export-npz`: a task's sample store as the ADM evaluator's npz (``arr_0``, N×H×W×3).

The store's merged ``manifest.jsonl`` says what to export: its keys, in its order, each only when
its PNG still has the recorded sha256. Files the manifest does not name are never exported. A
store with planned keys missing, unrecorded or altered is refused unless ``allow_partial``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from diffbench.data.samples import read_manifest
from diffbench.errors import DataError, ImageError
from diffbench.fsutil import file_sha256
from diffbench.generate import temp_name


@dataclass
class Export:
    """What `export_npz` wrote: N images of one size, out of the planned keys."""

    n: int
    size: tuple[int, int]
    planned: int
    left_out: list[str] = field(default_factory=list)


def _checked(sample_dir: Path) -> tuple[list[dict[str, Any]], list[str], int]:
    """(records whose PNG matches, keys left out with the reason, number of planned keys)."""
    manifest = sample_dir / "manifest.jsonl"
    if not manifest.is_file():
        raise DataError(f"{sample_dir}: no manifest.jsonl; export-npz reads a diffbench sample "
                        "store (RUN/samples/<task>): after sharded jobs run `diffbench merge RUN`; "
                        "images made elsewhere enter a store with `diffbench generate --model "
                        "folder`")
    records = {r["key"]: r for r in read_manifest(manifest)}  # one line per key; last wins
    plan = sample_dir / "plan.json"
    planned = json.loads(plan.read_text())["keys"] if plan.is_file() else list(records)
    good, left_out = [], [f"{k} (not in manifest.jsonl)" for k in planned if k not in records]
    for key, rec in records.items():
        png = sample_dir / f"{key}.png"
        if not png.is_file():
            left_out.append(f"{key} (no PNG)")
        elif file_sha256(png, cached=False) != rec["sha256"]:
            left_out.append(f"{key} (PNG differs from its sha256)")
        else:
            good.append(rec)
    return good, left_out, len(planned)


def export_npz(sample_dir: str | Path, out: str | Path, allow_partial: bool = False) -> Export:
    """Write the store's checked images, in manifest order, as an ADM-format npz.

    Streams one image at a time into the (uncompressed) zip member, so memory stays at one image
    whatever N; the file is N·H·W·3 bytes.
    """
    sample_dir, out = Path(sample_dir), Path(out)
    if out.is_dir():
        raise DataError(f"-o {out}: is a folder; give the .npz file to write")
    good, left_out, planned = _checked(sample_dir)
    if left_out and not allow_partial:
        raise DataError(f"{sample_dir}: {len(left_out)} of {planned} planned images cannot be "
                        f"exported (first: {', '.join(left_out[:3])}); finish the store "
                        "(rerun generate, then merge) or pass --allow-partial to export the "
                        f"{len(good)} good ones")
    if not good:
        raise DataError(f"{sample_dir}: no image to export; run diffbench generate first")
    shape = _decode(sample_dir, good[0]).shape
    tmp = temp_name(out, "export")
    try:
        _write_npz(tmp, sample_dir, good, shape)
        os.replace(tmp, out)
    except OSError as exc:
        raise DataError(f"-o {out}: cannot write ({exc.strerror or exc}); choose another "
                        "path") from None
    finally:
        tmp.unlink(missing_ok=True)
    return Export(len(good), (shape[0], shape[1]), planned, left_out)


def _decode(sample_dir: Path, rec: dict[str, Any]) -> np.ndarray:
    """The key's PNG as uint8 H×W×3, checked once more against its sha256 while read."""
    path = sample_dir / f"{rec['key']}.png"
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != rec["sha256"]:
        raise DataError(f"{path}: changed while exporting; rerun export-npz")
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read PNG ({exc}); delete it and rerun generate") from exc


def _write_npz(tmp: Path, sample_dir: Path, records: list[dict[str, Any]],
               shape: tuple[int, ...]) -> None:
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("arr_0.npy", "w", force_zip64=True) as fh:
            header = {"descr": "|u1", "fortran_order": False, "shape": (len(records), *shape)}
            np.lib.format.write_array_header_1_0(fh, header)
            for rec in records:
                img = _decode(sample_dir, rec)
                if img.shape != shape:
                    raise ImageError(f"{sample_dir / (rec['key'] + '.png')}: size "
                                     f"{img.shape[:2]} differs from {shape[:2]} of "
                                     f"{records[0]['key']}.png; the npz format needs one size")
                fh.write(img.tobytes())
