"""The two sides of a distribution comparison, as features: loaded once, cached, from any source.

A side is an image source (folder, ADM .npz, a run's sample store, a dataset's reals), an ADM
reference batch (stored ``mu``/``sigma`` and ``mu_s``/``sigma_s`` for FID/sFID, its images for
the rest, as the ADM evaluator reads it), or a diffbench statistics file. The reference side's
features are cached by content hash and extractor fingerprint (`diffbench.stats`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diffbench import stats as stats_lib
from diffbench.data import open_images
from diffbench.data.npz import NpzSource
from diffbench.data.subset import at_most
from diffbench.errors import DataError, MetricInputError, StorageError
from diffbench.extract import FeatureSet, extract
from diffbench.log import logger


@dataclass
class Side:
    """One side of a comparison, as features: Gaussians per layer and rows per layer."""

    n: int
    gaussians: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    banks: dict[str, np.ndarray] = field(default_factory=dict)
    describe: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    labels: np.ndarray | None = None


def open_side(path: str | Path) -> Path | Any:
    """A statistics file stays a path; images (folder, .npz) are opened and listed now."""
    path = Path(path)
    return path if stats_lib.is_stats_file(path) else open_images(path)


def limited(source: Any, inputs: Mapping[str, Any], what: str) -> Any:
    """`source` cut to the protocol's ``max_images`` (dgm-eval's draw with ``subsample_seed``,
    `diffbench.data.subset`, noted in its description and logged); a statistics file, a source
    within the limit and a protocol without one leave it as it is."""
    limit = inputs.get("max_images")
    if limit is None or source is None:
        return source
    if isinstance(source, (str, Path)):
        if stats_lib.is_stats_file(Path(source)):
            return source
        source = open_images(source)
    kept = at_most(source, limit, inputs.get("subsample_seed", 0))
    if kept is not source:
        note = kept.note()
        logger.warning("%s: %d images, more than max_images; scoring the %d dgm-eval keeps "
                       "(seed %d), %d dropped", what, note["from"], note["kept"], note["seed"],
                       note["dropped"])
    return kept


def load_side(source: Path | Any, moments: tuple[str, ...], banks: tuple[str, ...], extractor,
              fake: bool, batch_size: int, workers: int | None, cache: bool, extract_fn=None,
              write_cache: bool = True, what: str = "") -> Side:
    """Features of one side: a statistics file, a reference batch's stats, or images (path/source).

    `moments`: layers needing Gaussian moments; `banks`: layers needing feature rows; `what`
    names the metrics for error messages.
    """
    if isinstance(source, (str, Path)) and stats_lib.is_stats_file(Path(source)):
        return _stats_side(Path(source), what, extractor, moments, banks)
    if isinstance(source, (str, Path)):
        source = open_images(source)
    stored: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if isinstance(source, NpzSource) and not fake and (ref := source.stats()):
        for layer, (mu_key, sigma_key) in stats_lib.LAYER_KEYS.items():
            if layer in moments and mu_key in ref and sigma_key in ref:
                stored[layer] = (ref[mu_key], ref[sigma_key])
        moments = tuple(m for m in moments if m not in stored)
    side = _extract_cached(source, extractor, moments, banks, batch_size, workers,
                           cache and not fake, extract_fn, write_cache)
    side.gaussians.update(stored)
    if stored:
        side.describe["stored_stats"] = sorted(stored)
    return side


def _stats_side(path: Path, what: str, extractor, moments, banks) -> Side:
    st = stats_lib.load(path)
    stats_lib.check_fingerprint(st, extractor.fingerprint(), str(path))
    missing = [k for k in moments if k not in st.gaussians] + [
        k for k in banks if k not in st.banks]
    if missing:
        raise MetricInputError(f"{path}: statistics lack {', '.join(missing)} needed for "
                               f"{what}; recompute with --keep-features")
    return Side(st.n, st.gaussians, st.banks, {"kind": "stats", "path": str(path),
                                               "header": st.header})


def _extract_cached(source, extractor, moments, banks, batch_size, workers, cache,
                    extract_fn=None, write_cache: bool = True) -> Side:
    describe = source.describe()
    if not moments and not banks:
        return Side(len(source), describe=describe)
    key = None
    if cache:
        describe["content_sha256"] = source.content_hash()
        key = stats_lib.cache_path(describe["content_sha256"], extractor.fingerprint_hash(),
                                   (*moments, *(f"rows-{b}" for b in banks)))
        st = _read_cache(key)
        if st is not None:
            if set(moments) <= set(st.gaussians) and set(banks) <= set(st.banks):
                return Side(st.n, st.gaussians, st.banks, {**describe, "cache": str(key)})
            logger.warning("%s: cached statistics lack some layers; recomputing", key)
    fs = (extract_fn or extract)(source, extractor, moments, banks, batch_size, workers,
                                 desc=describe.get("path") or "images")
    if key is not None and write_cache:
        try:
            stats_lib.save(key, fs.moments, fs.banks, extractor.fingerprint(), "cache", describe,
                           fs.n)
        except StorageError as exc:
            raise StorageError(f"{exc} (the statistics cache: set DIFFBENCH_HOME to another "
                               "folder, or pass --no-cache)") from exc
    describe["sizes"] = fs.sizes
    return _from_features(fs, describe)


def _from_features(fs: FeatureSet, describe: dict[str, Any]) -> Side:
    return Side(fs.n, {k: (m.mean(), m.cov()) for k, m in fs.moments.items()},
                {k: b.array() for k, b in fs.banks.items()}, describe, fs.seconds)


def _read_cache(key: Path) -> stats_lib.Stats | None:
    """A cache entry, or None when absent; a damaged or altered entry is removed (and recomputed)."""
    from diffbench.fsutil import remove_orphans

    remove_orphans(key.parent)  # temporary files of killed writers
    if not key.is_file():
        return None
    try:
        return stats_lib.load(key, require_checksum=True)
    except stats_lib.CorruptStatsError as exc:
        logger.warning("%s: damaged cache entry (%s); removed, recomputing", key, exc.reason)
    except DataError as exc:
        logger.warning("discarding an unusable cache entry, recomputing: %s", exc)
    key.unlink(missing_ok=True)
    return None
