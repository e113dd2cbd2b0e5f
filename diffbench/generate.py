"""The generation loop: share keys by rank/shard, skip what exists, write PNGs atomically.

Layout of a task's sample folder: `<key>.png`, one `manifest.rank{p}.jsonl` per part (rank or
shard; appended and fsynced per batch), `plan.json` (the planned keys) and `manifest.jsonl`, the
merged view written by `merge_manifests`. Files are written under temporary names unique to the
writer (part, PID, random) and renamed. A run killed at any moment and restarted with the same
command loses nothing and duplicates nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from diffbench.adapters.base import Adapter, Request
from diffbench.data.samples import read_manifest
from diffbench.errors import DataError, ImageError, shown
from diffbench.faults import maybe_fail
from diffbench.fsutil import file_sha256
from diffbench.log import logger
from diffbench.log import progress as progress_bar
from diffbench.requests import spread

PNG_COMPRESS_LEVEL = 1  # measured: fastest level that still compresses; bytes are deterministic
TMP_MARK = ".tmp"  # temporary names: .<name>.tmp.<tag>.<pid>-<random>


@dataclass
class GenerationReport:
    """What one call of `generate` did: `made_now` images made by this call, `skipped` found."""

    planned: int
    skipped: int
    made_now: int
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


def temp_name(path: Path, tag: str = "w") -> Path:
    """A temporary name beside `path`, unique per process and call (tag: the writer's part)."""
    return path.with_name(f".{path.name}{TMP_MARK}.{tag}.{os.getpid()}-{secrets.token_hex(4)}")


def remove_temps(folder: Path, tag: str = "*") -> None:
    """Delete leftover temporary files of writer `tag` (all writers by default) in `folder`."""
    for tmp in folder.glob(f".*{TMP_MARK}.{tag}.*"):
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes, tag: str = "w", fault: str | None = None) -> None:
    """Write bytes to a temporary name in the same folder, fsync, then rename over `path`."""
    tmp = temp_name(path, tag)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if fault:
            maybe_fail(fault)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _record(req: Request, sha: str) -> dict[str, Any]:
    rec = {"key": req.key, "seed": req.seed, "condition": req.condition,
           "sampler": req.sampler, "sha256": sha}
    if req.item is not None:
        rec["item"] = req.item
    return rec


def _append(path: Path, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    data = b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in records)
    cut = data.index(b"\n") // 2  # two writes, so a test can kill the process mid-line
    with open(path, "ab") as fh:
        fh.write(data[:cut])
        fh.flush()
        maybe_fail("manifest-line")
        fh.write(data[cut:])
        fh.flush()
        os.fsync(fh.fileno())


def _write_plan(out_dir: Path, keys: list[str], part: int) -> None:
    data = json.dumps({"keys": keys}, separators=(",", ":")).encode()
    plan = out_dir / "plan.json"
    if not plan.exists() or plan.read_bytes() != data:
        atomic_write(plan, data, tag=f"p{part}")


def _my_share(requests: Sequence[Request], part: int, parts: int) -> list[Request]:
    ordered = sorted(requests, key=lambda r: r.key)
    return [r for i, r in enumerate(ordered) if i % parts == part]


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def _check_settings(rec: dict[str, Any], req: Request, out_dir: Path) -> None:
    """A recorded key must have been made from the same request (seed, condition, sampler)."""
    want = _record(req, rec["sha256"])
    for field in ("seed", "condition", "sampler", "item"):
        if _normal(rec.get(field)) != _normal(want.get(field)):
            raise DataError(f"{out_dir}: image {req.key} was made with {field} "
                            f"{shown(rec.get(field))}, this run asks {shown(want.get(field))}; the store "
                            "holds other settings: use another --out, or --fresh to discard it")


def read_parts(out_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every record of every part manifest, by key, in file order (unfinished lines skipped)."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(out_dir.glob("manifest.rank*.jsonl")):
        for rec in read_manifest(path):
            by_key.setdefault(rec["key"], []).append(rec)
    return by_key


def _resume_state(out_dir: Path, mine: list[Request], manifest: Path,
                  part: int) -> tuple[list[Request], int]:
    """Remove own temp files, repair the manifest, re-create missing lines; return (todo, repaired).

    A PNG recorded by no manifest is adopted (the process died between its rename and its
    line). A PNG that matches none of its key's records is made again.
    """
    remove_temps(out_dir, f"p{part}")
    own = {r["key"] for r in read_manifest(manifest, repair=True)}
    recorded = read_parts(out_dir)
    todo, fixes = [], []
    for req in mine:
        for rec in recorded.get(req.key, ()):
            _check_settings(rec, req, out_dir)
        png = out_dir / f"{req.key}.png"
        if not png.exists():
            todo.append(req)
        elif req.key not in own:
            sha = file_sha256(png, cached=False)
            shas = {r["sha256"] for r in recorded.get(req.key, ())}
            if shas and sha not in shas:
                logger.warning("%s: differs from its manifest records; made again", png)
                todo.append(req)
            elif not shas:
                fixes.append(_record(req, sha))
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
    if limit is not None and limit >= len(ordered):
        limit = None  # every image: not a smoke run
    if limit is not None:
        ordered = spread(ordered, limit)  # as `--limit`: spread over the conditions
    _write_plan(out_dir, [r.key for r in ordered], part)
    mine = _my_share(ordered, part, parts)
    manifest = out_dir / f"manifest.rank{part}.jsonl"
    todo, repaired = _resume_state(out_dir, mine, manifest, part)
    start = time.perf_counter()
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    bar = progress_bar(batches, desc=f"generate {out_dir.name}", total=len(todo),
                       unit="images", count=len) if progress else batches
    for batch in bar:
        images = adapter.generate(batch)
        if len(images) != len(batch):
            raise DataError(f"adapter returned {len(images)} images for {len(batch)} requests")
        records = []
        for req, img in zip(batch, images, strict=True):
            data = png_bytes(np.asarray(img))
            atomic_write(out_dir / f"{req.key}.png", data, tag=f"p{part}", fault="png-rename")
            records.append(_record(req, hashlib.sha256(data).hexdigest()))
        _append(manifest, records)
    seconds = time.perf_counter() - start
    return GenerationReport(planned=len(mine), skipped=len(mine) - len(todo), made_now=len(todo),
                            seconds=seconds, images_per_s=len(todo) / seconds if seconds else 0.0,
                            part=part, parts=parts, smoke=limit is not None, repaired=repaired)


def merge_manifests(out_dir: str | Path) -> list[dict[str, Any]]:
    """Merge `manifest.rank*.jsonl` into `manifest.jsonl` (sorted, one line per key) and check it.

    A key recorded several times (its PNG was deleted and made again) takes the record that
    matches its PNG, the last one when several do. Raises DataError when a key of `plan.json`
    has no PNG or no line, or when a PNG matches none of its key's records.
    """
    out_dir = Path(out_dir)
    by_key = read_parts(out_dir)
    plan_path = out_dir / "plan.json"
    planned = json.loads(plan_path.read_text())["keys"] if plan_path.exists() else sorted(by_key)
    missing = [k for k in planned if k not in by_key or not (out_dir / f"{k}.png").exists()]
    if missing:
        raise DataError(f"{out_dir}: {len(missing)} of {len(planned)} planned images missing "
                        f"(first: {', '.join(missing[:5])}); rerun generate (all shards/ranks)")
    merged, bad = {}, []
    for key in sorted(planned):
        sha = file_sha256(out_dir / f"{key}.png", cached=False)
        match = [r for r in by_key[key] if r["sha256"] == sha]
        if match:
            merged[key] = match[-1]
        else:
            bad.append(key)
    if bad:
        raise DataError(f"{out_dir}: {len(bad)} PNGs differ from their manifest sha256 "
                        f"(first: {', '.join(bad[:5])}); delete them and rerun generate")
    records = [merged[k] for k in sorted(planned)]
    data = b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in records)
    atomic_write(out_dir / "manifest.jsonl", data, tag="merge")
    return records


def sample_dirs(path: Path) -> list[Path]:
    """The task sample folders at `path`: the folder itself, or ``samples/*`` of a run folder."""
    if (path / "plan.json").exists() or any(path.glob("manifest.rank*.jsonl")):
        return [path]
    return sorted(p.parent for p in path.glob("samples/*/plan.json"))
