"""Reference statistics files: compute, save, load, verify the fingerprint; and their cache.

A statistics file is an ``.npz`` without pickles: ``mu``/``sigma`` (pool3) and ``mu_s``/``sigma_s``
(sFID) as the ADM evaluator names them, optionally ``feats_pool3`` (float32 rows, for KID and
precision/recall), and ``header``: UTF-8 JSON bytes as a uint8 array with the extractor
fingerprint, protocol, number of images, content hash of the source and diffbench version.
Loading statistics whose fingerprint differs from the extractor in use is an error.

The cache (``$DIFFBENCH_HOME/stats-cache``) keys files by the source's content hash and the
extractor fingerprint, so the same reference is extracted once.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diffbench import __version__
from diffbench.errors import DataError
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


def save(path: str | Path, moments: dict[str, GaussianMoments], banks: dict[str, FeatureBank],
         fingerprint: dict[str, Any], protocol: str, source: dict[str, Any], n: int) -> Path:
    """Write a statistics file atomically."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for layer, state in moments.items():
        mu_key, sigma_key = layer_keys(layer)
        arrays[mu_key] = state.mean()
        arrays[sigma_key] = state.cov()
    for layer, bank in banks.items():
        arrays[f"feats_{layer}"] = bank.array().astype(np.float32)
    header = {"format": FORMAT, "fingerprint": fingerprint, "protocol": protocol, "n": n,
              "source": source, "diffbench_version": __version__}
    arrays["header"] = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def load(path: str | Path) -> Stats:
    """Read a statistics file (safe loading) and check its shape."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data["header"]).decode())
            layers = [k[len("mu_"):] for k in data.files if k.startswith("mu_") and k != "mu_s"]
            gaussians = {layer: (data[m].astype(np.float64), data[s].astype(np.float64))
                         for layer in [*LAYER_KEYS, *layers]
                         for m, s in [layer_keys(layer)] if m in data and s in data}
            banks = {k[len("feats_"):]: data[k] for k in data.files if k.startswith("feats_")}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a diffbench statistics file ({exc}); compute one with "
                        "`diffbench stats compute SOURCE --protocol P -o FILE.npz`") from exc
    if header.get("format") != FORMAT:
        raise DataError(f"{path}: unknown statistics format {header.get('format')!r}")
    return Stats(gaussians, banks, header, int(header["n"]))


def check_fingerprint(stats: Stats, fingerprint: dict[str, Any], where: str) -> None:
    """Refuse statistics made with another extractor, weights or preprocessing."""
    theirs = stats.header.get("fingerprint", {})
    keys = ("extractor", "weights_sha256", "resize", "size", "normalisation")
    diff = [k for k in keys if theirs.get(k) != fingerprint.get(k)]
    if diff:
        detail = ", ".join(f"{k}: file {theirs.get(k)!r} vs now {fingerprint.get(k)!r}"
                           for k in diff)
        raise DataError(f"{where}: statistics were computed with another extractor "
                                 f"({detail}); recompute them with `diffbench stats compute`")


def cache_dir() -> Path:
    """Where cached statistics live."""
    base = os.environ.get("DIFFBENCH_HOME") or str(Path.home() / ".cache" / "diffbench")
    return Path(base).expanduser() / "stats-cache"


def cache_path(content_hash: str, fingerprint_hash: str, layers: tuple[str, ...]) -> Path:
    """The cache file of a source under an extractor (and the kept layers)."""
    tag = "-".join(sorted(layers)) or "none"
    return cache_dir() / f"{content_hash[:24]}-{fingerprint_hash}-{tag}.npz"
