"""Reference statistics files: compute, save, load, verify the fingerprint; and their cache.

A statistics file is an ``.npz`` without pickles: ``mu``/``sigma`` (pool3) and ``mu_s``/``sigma_s``
(sFID) as the ADM evaluator names them, optionally ``feats_pool3`` (float32 rows, for KID and
precision/recall), and ``header``: UTF-8 JSON bytes as a uint8 array with the extractor
fingerprint, protocol, number of images, content hash of the source and diffbench version.
Loading statistics whose fingerprint differs from the extractor in use is an error.

The header also holds ``sha256``: a checksum of the header's other fields and of every array
(name, dtype, shape, bytes). A file whose arrays or header were changed after it was written, or
that was cut short, fails to load with an error; the cache treats such an entry as absent.

The cache (``$DIFFBENCH_HOME/stats-cache``) keys files by the source's content hash and the
extractor fingerprint, so the same reference is extracted once. Files are written atomically
(`diffbench.fsutil.atomic_write`).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diffbench import __version__
from diffbench.download import diffbench_home
from diffbench.errors import DataError, shown
from diffbench.fsutil import atomic_write
from diffbench.metrics.states import FeatureBank, GaussianMoments

LAYER_KEYS = {"pool3": ("mu", "sigma"), "sfid": ("mu_s", "sigma_s")}


def layer_keys(layer: str) -> tuple[str, str]:
    """The .npz keys of a layer's mean and covariance (ADM's names for pool3 and sFID)."""
    return LAYER_KEYS.get(layer, (f"mu_{layer}", f"sigma_{layer}"))
FORMAT = "diffbench-stats-1"


@dataclass
class Stats:
    """Loaded statistics: means/covariances per layer, optional pool3 rows, and the header."""

    gaussians: dict[str, tuple[np.ndarray, np.ndarray]]
    banks: dict[str, np.ndarray]
    header: dict[str, Any]
    n: int


def is_stats_file(path: Path) -> bool:
    """True for an .npz written by `save` (it has a header)."""
    if path.suffix != ".npz" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return "header.npy" in zf.namelist()
    except zipfile.BadZipFile:
        return False


def checksum(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """sha256 of a header (without its own ``sha256``) and of every array's name, type and bytes."""
    h = hashlib.sha256()
    rest = {k: v for k, v in header.items() if k != "sha256"}
    h.update(json.dumps(rest, sort_keys=True).encode() + b"\0")
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.data)
    return h.hexdigest()


def save(path: str | Path, moments: dict[str, GaussianMoments], banks: dict[str, FeatureBank],
         fingerprint: dict[str, Any], protocol: str, source: dict[str, Any], n: int) -> Path:
    """Write a statistics file atomically, with the checksum of its header and arrays."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for layer, state in moments.items():
        arrays.update(zip(layer_keys(layer), (state.mean(), state.cov()), strict=True))
    for layer, bank in banks.items():
        arrays[f"feats_{layer}"] = bank.array().astype(np.float32)
    header = {"format": FORMAT, "fingerprint": fingerprint, "protocol": protocol, "n": n,
              "source": source, "diffbench_version": __version__}
    header["sha256"] = checksum(header, arrays)
    arrays["header"] = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
    return atomic_write(path, lambda fh: np.savez(fh, **arrays), suffix=".npz",
                        fault="stats-write")


class CorruptStatsError(DataError):
    """A statistics file is truncated, garbage, or was changed after it was written."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}; compute it again with `diffbench stats compute "
                         "SOURCE --protocol P -o FILE.npz`")


# What reading a truncated, garbage or foreign file raises (a PermissionError is let through).
_DAMAGED = (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError,
            UnicodeDecodeError)


def _damaged(path: Path, exc: BaseException) -> CorruptStatsError:
    if isinstance(exc, EOFError) or "No data left" in str(exc):
        reason = "the file is empty"
    elif isinstance(exc, ValueError) and "pickle" in str(exc):
        reason = "not an .npz archive"  # numpy's own text suggests loading it unsafely
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return CorruptStatsError(path, f"not a diffbench statistics file, or a damaged one ({reason})")


def _read_arrays(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        header = json.loads(bytes(arrays.pop("header")).decode())
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except PermissionError:
        raise
    except _DAMAGED as exc:
        raise _damaged(path, exc) from exc
    return header, arrays


def load(path: str | Path, require_checksum: bool = False) -> Stats:
    """Read a statistics file (safe loading), verify its checksum and check its shape.

    A file without a checksum (written before diffbench recorded one) loads unless
    `require_checksum` (the cache requires one).
    """
    path = Path(path)
    header, arrays = _read_arrays(path)
    if header.get("format") != FORMAT:
        raise DataError(f"{path}: unknown statistics format {shown(header.get('format'))}")
    stored = header.get("sha256")
    if stored is None and require_checksum:
        raise CorruptStatsError(path, "no checksum in the header (written by an older "
                                      "diffbench)")
    if stored is not None and stored != checksum(header, arrays):
        raise CorruptStatsError(path, "checksum mismatch: the file was changed or damaged "
                                      "after it was written")
    layers = [k[len("mu_"):] for k in arrays if k.startswith("mu_") and k != "mu_s"]
    gaussians = {layer: (arrays[m].astype(np.float64), arrays[s].astype(np.float64))
                 for layer in [*LAYER_KEYS, *layers]
                 for m, s in [layer_keys(layer)] if m in arrays and s in arrays}
    banks = {k[len("feats_"):]: v for k, v in arrays.items() if k.startswith("feats_")}
    try:
        n = int(header["n"])
    except (KeyError, TypeError, ValueError):
        raise CorruptStatsError(path, "the header has no image count 'n'") from None
    return Stats(gaussians, banks, header, n)


def peek(path: str | Path) -> tuple[dict[str, Any], list[str]]:
    """A statistics file's header and array names, without reading the arrays (cheap)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n.removesuffix(".npy") for n in zf.namelist()]
            with zf.open("header.npy") as fh:
                header = json.loads(bytes(np.lib.format.read_array(fh)).decode())
    except PermissionError:
        raise
    except _DAMAGED as exc:
        raise _damaged(path, exc) from exc
    return header, [n for n in names if n != "header"]


def check_fingerprint(stats: Stats, fingerprint: dict[str, Any], where: str) -> None:
    """Refuse statistics made with another extractor, weights or preprocessing."""
    theirs = stats.header.get("fingerprint", {})
    keys = ("extractor", "weights_sha256", "resize", "size", "normalisation")
    diff = [k for k in keys if theirs.get(k) != fingerprint.get(k)]
    if diff:
        detail = ", ".join(f"{k}: file {shown(theirs.get(k))} vs now {shown(fingerprint.get(k))}"
                           for k in diff)
        raise DataError(f"{where}: statistics were computed with another extractor "
                                 f"({detail}); recompute them with `diffbench stats compute`")


def cache_dir() -> Path:
    """Where cached statistics live."""
    return diffbench_home() / "stats-cache"


def cache_path(content_hash: str, fingerprint_hash: str, layers: tuple[str, ...]) -> Path:
    """The cache file of a source under an extractor (and the kept layers)."""
    tag = "-".join(sorted(layers)) or "none"
    return cache_dir() / f"{content_hash[:24]}-{fingerprint_hash}-{tag}.npz"
