"""The generation loop: share keys by rank/shard, skip what exists, write PNGs atomically.

Layout of a task's sample folder: `<key>.png`, one `manifest.rank{p}.jsonl` per part (rank or
shard; appended and fsynced per batch), `plan.json` (the planned keys) and `manifest.jsonl`, the
merged view written by `merge_manifests`. A run killed at any moment and restarted with the same
command loses nothing and duplicates nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from diffbench.adapters.base import Adapter, Request
from diffbench.data.samples import read_manifest
from diffbench.errors import DataError, ImageError
from diffbench.log import progress as progress_bar

PNG_COMPRESS_LEVEL = 1  # measured: fastest level that still compresses; bytes are deterministic
_TMP_MARK = ".tmp"


@dataclass
class GenerationReport:
    """What one call of `generate` did."""

    planned: int
    skipped: int
    generated: int
    seconds: float
    images_per_s: float
    part: int = 0
    parts: int = 1
    smoke: bool = False
    repaired: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the results record."""
        return asdict(self)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 H×W×3 image as PNG bytes (fixed settings, deterministic)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"adapter returned an image of dtype {image.dtype} and shape "
                         f"{image.shape}; adapters must return uint8 H×W×3 arrays")
    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def atomic_write(path: Path, data: bytes, tag: str = "") -> None:
    """Write bytes to a temporary name in the same folder, fsync, then rename over `path`."""
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{tag}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _record(req: Request, sha: str) -> dict[str, Any]:
    rec = {"key": req.key, "seed": req.seed, "condition": req.condition,
           "sampler": req.sampler, "sha256": sha}
    if req.item is not None:
        rec["item"] = req.item
    return rec


def _append(path: Path, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    with open(path, "ab") as fh:
        fh.write(b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in records))
        fh.flush()
        os.fsync(fh.fileno())


def _write_plan(out_dir: Path, keys: list[str], part: int) -> None:
    data = json.dumps({"keys": keys}, separators=(",", ":")).encode()
    plan = out_dir / "plan.json"
    if not plan.exists() or plan.read_bytes() != data:
        atomic_write(plan, data, tag=str(part))


def _my_share(requests: Sequence[Request], part: int, parts: int) -> list[Request]:
    ordered = sorted(requests, key=lambda r: r.key)
    return [r for i, r in enumerate(ordered) if i % parts == part]


def _resume_state(out_dir: Path, mine: list[Request], manifest: Path,
                  part: int) -> tuple[list[Request], int]:
    """Remove own temp files, repair the manifest, re-create missing lines; return (todo, repaired)."""
    for tmp in out_dir.glob(f".*{_TMP_MARK}{part}"):
        tmp.unlink()
    recorded = {r["key"] for r in read_manifest(manifest, repair=True)}
    todo, fixes = [], []
    for req in mine:
        png = out_dir / f"{req.key}.png"
        if not png.exists():
            todo.append(req)
        elif req.key not in recorded:
            fixes.append(_record(req, hashlib.sha256(png.read_bytes()).hexdigest()))
    _append(manifest, fixes)
    return todo, len(fixes)


def generate(adapter: Adapter, requests: Sequence[Request], out_dir: str | Path,
             batch_size: int, rank: int = 0, world_size: int = 1,
             shard: tuple[int, int] | None = None, limit: int | None = None,
             progress: bool = True) -> GenerationReport:
    """Generate this rank's/shard's share of `requests` into `out_dir`, resuming what exists."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shard_i, shard_n = shard or (0, 1)
    part, parts = shard_i * world_size + rank, shard_n * world_size
    ordered = sorted(requests, key=lambda r: r.key)
    if limit is not None:
        ordered = ordered[:limit]
    _write_plan(out_dir, [r.key for r in ordered], part)
    mine = _my_share(ordered, part, parts)
    manifest = out_dir / f"manifest.rank{part}.jsonl"
    todo, repaired = _resume_state(out_dir, mine, manifest, part)
    start = time.perf_counter()
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    bar = progress_bar(batches, desc=f"generate {out_dir.name}", total=len(batches)) \
        if progress else batches
    for batch in bar:
        images = adapter.generate(batch)
        if len(images) != len(batch):
            raise DataError(f"adapter returned {len(images)} images for {len(batch)} requests")
        records = []
        for req, img in zip(batch, images, strict=True):
            data = png_bytes(np.asarray(img))
            atomic_write(out_dir / f"{req.key}.png", data, tag=str(part))
            records.append(_record(req, hashlib.sha256(data).hexdigest()))
        _append(manifest, records)
    seconds = time.perf_counter() - start
    return GenerationReport(planned=len(mine), skipped=len(mine) - len(todo), generated=len(todo),
                            seconds=seconds, images_per_s=len(todo) / seconds if seconds else 0.0,
                            part=part, parts=parts, smoke=limit is not None, repaired=repaired)


def merge_manifests(out_dir: str | Path) -> list[dict[str, Any]]:
    """Merge `manifest.rank*.jsonl` into `manifest.jsonl` (sorted, one line per key) and check it.

    Raises DataError when a key of `plan.json` has no PNG or no line, when one key has two
    different hashes, or when a PNG's bytes do not match its recorded sha256.
    """
    out_dir = Path(out_dir)
    merged: dict[str, dict[str, Any]] = {}
    for path in sorted(out_dir.glob("manifest.rank*.jsonl")):
        for rec in read_manifest(path):
            old = merged.setdefault(rec["key"], rec)
            if old["sha256"] != rec["sha256"]:
                raise DataError(f"{out_dir}: key {rec['key']} recorded twice with different "
                                "images; delete that PNG and rerun generate")
    plan_path = out_dir / "plan.json"
    planned = json.loads(plan_path.read_text())["keys"] if plan_path.exists() else sorted(merged)
    missing = [k for k in planned if k not in merged or not (out_dir / f"{k}.png").exists()]
    if missing:
        raise DataError(f"{out_dir}: {len(missing)} of {len(planned)} planned images missing "
                        f"(first: {', '.join(missing[:5])}); rerun generate (all shards/ranks)")
    bad = [k for k in planned if hashlib.sha256((out_dir / f"{k}.png").read_bytes()).hexdigest()
           != merged[k]["sha256"]]
    if bad:
        raise DataError(f"{out_dir}: {len(bad)} PNGs differ from their manifest sha256 "
                        f"(first: {', '.join(bad[:5])}); delete them and rerun generate")
    records = [merged[k] for k in sorted(planned)]
    data = b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in records)
    atomic_write(out_dir / "manifest.jsonl", data, tag="merge")
    return records


def export_npz(sample_dir: str | Path, out: str | Path) -> tuple[int, tuple[int, int]]:
    """Write the PNGs of a sample folder, sorted by key, as an ADM-format npz (`arr_0`, N×H×W×3).

    Streams one image at a time into the (uncompressed) zip member, so memory stays at one image
    whatever N; the file is N·H·W·3 bytes. Returns (N, (H, W)).
    """
    sample_dir, out = Path(sample_dir), Path(out)
    files = sorted((p for p in sample_dir.glob("*.png") if not p.name.startswith(".")),
                   key=lambda p: p.stem)
    if not files:
        raise DataError(f"{sample_dir}: no PNG files to export; run diffbench generate first")
    first = _read_rgb(files[0])
    shape = first.shape
    tmp = out.with_name(f".{out.name}{_TMP_MARK}")
    try:
        _write_npz(tmp, files, shape)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return len(files), (shape[0], shape[1])


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read PNG ({exc}); delete it and rerun generate") from exc


def _write_npz(tmp: Path, files: list[Path], shape: tuple[int, ...]) -> None:
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("arr_0.npy", "w", force_zip64=True) as fh:
            header = {"descr": "|u1", "fortran_order": False, "shape": (len(files), *shape)}
            np.lib.format.write_array_header_1_0(fh, header)
            for path in files:
                img = _read_rgb(path)
                if img.shape != shape:
                    raise ImageError(f"{path}: size {img.shape[:2]} differs from {shape[:2]} of "
                                     f"{files[0].name}; the npz format needs one image size")
                fh.write(img.tobytes())
