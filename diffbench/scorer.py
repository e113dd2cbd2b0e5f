"""Scoring two image sets under a protocol: one pass per set, every metric from the same features.

Sides: an image source (folder, ADM .npz), an ADM reference batch (stored ``mu``/``sigma`` and
``mu_s``/``sigma_s`` for FID/sFID, its images for precision/recall and KID, as the ADM evaluator
reads it), or a diffbench statistics file. The real side's features are cached by content hash
and extractor fingerprint.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diffbench import stats as stats_lib
from diffbench.data import open_images
from diffbench.data.npz import NpzSource
from diffbench.errors import ConfigError, DataError, MetricInputError, StorageError
from diffbench.extract import FeatureSet, extract
from diffbench.log import logger
from diffbench.metrics.distribution import compute_all
from diffbench.metrics.states import FeatureBank, GaussianMoments
from diffbench.protocols import Protocol

METRIC_NAMES = ("fid", "sfid", "kid", "isc", "prc", "accuracy")
# What each metric needs from a side: Gaussian moments or feature rows (of the layer the
# protocol names for it); "fake_banks" only from the generated side.
ROLES: dict[str, str] = {"fid": "moments", "sfid": "moments", "kid": "banks", "prc": "banks",
                         "isc": "fake_banks", "accuracy": "fake_banks"}


@dataclass
class Side:
    """One side of a comparison, as features: Gaussians per layer and rows per layer."""

    n: int
    gaussians: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    banks: dict[str, np.ndarray] = field(default_factory=dict)
    describe: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    labels: np.ndarray | None = None


@dataclass(frozen=True)
class Pass:
    """One pass over the images: an extractor and the metrics it feeds."""

    extractor: str
    resize: str
    metrics: tuple[str, ...]
    protocol: Protocol


def passes(protocol: Protocol, metrics: list[str]) -> list[Pass]:
    """The extractor passes a protocol needs: one, plus VGG16 when precision/recall use it.

    torch-fidelity computes precision/recall on VGG16 fc2_relu features (a second pass), the
    other metrics on Inception; ``prc.features: pool3`` keeps them on Inception (ADM's choice).
    """
    if "prc" not in metrics or protocol.prc.get("features") != "vgg16":
        return [Pass(protocol.extractor, protocol.resize, tuple(metrics), protocol)]
    rest = tuple(m for m in metrics if m != "prc")
    vgg = dataclasses.replace(protocol, layers={**protocol.layers, "prc": "fc2_relu"})
    out = [Pass(protocol.extractor, protocol.resize, rest, protocol)] if rest else []
    return [*out, Pass("vgg16", "tf-bilinear", ("prc",), vgg)]


def parse_metrics(text: str | list[str]) -> list[str]:
    """``fid,kid,isc`` → a checked list."""
    names = [m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    unknown = [m for m in names if m not in METRIC_NAMES]
    if unknown or not names:
        raise ConfigError(f"--metrics: unknown {', '.join(unknown) or '(none given)'}; choose "
                          f"from {', '.join(METRIC_NAMES)}")
    return names


def needs(metrics: list[str], protocol: Protocol, fake: bool) -> tuple[tuple[str, ...],
                                                                       tuple[str, ...]]:
    """(layers needing Gaussian moments, layers needing feature rows) of one side."""
    moments: set[str] = set()
    banks: set[str] = set()
    for m in metrics:
        role, layer = ROLES[m], protocol.layers.get(m)
        if layer is None:
            raise ConfigError(f"protocol '{protocol.name}' names no feature layer for '{m}'")
        if role == "moments":
            moments.add(layer)
        elif role == "banks" or fake:
            banks.add(layer)
    return tuple(sorted(moments)), tuple(sorted(banks))


def _from_features(fs: FeatureSet, describe: dict[str, Any]) -> Side:
    return Side(fs.n, {k: (m.mean(), m.cov()) for k, m in fs.moments.items()},
                {k: b.array() for k, b in fs.banks.items()}, describe, fs.seconds)


def load_side(source: Path | Any, metrics: list[str], extractor, protocol: Protocol, fake: bool,
              batch_size: int, workers: int | None, cache: bool,
              extra_banks: tuple[str, ...] = (), extract_fn=None,
              write_cache: bool = True) -> Side:
    """Features of one side: a statistics file, a reference batch's stats, or images (path/source)."""
    moments, banks = needs(metrics, protocol, fake)
    banks = tuple(sorted({*banks, *extra_banks}))
    if isinstance(source, (str, Path)) and stats_lib.is_stats_file(Path(source)):
        return _stats_side(Path(source), metrics, extractor, moments, banks)
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


def _stats_side(path: Path, metrics: list[str], extractor, moments, banks) -> Side:
    st = stats_lib.load(path)
    stats_lib.check_fingerprint(st, extractor.fingerprint(), str(path))
    missing = [k for k in moments if k not in st.gaussians] + [
        k for k in banks if k not in st.banks]
    if missing:
        raise MetricInputError(f"{path}: statistics lack {', '.join(missing)} needed for "
                               f"{', '.join(metrics)}; recompute with --keep-features")
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


def bootstrap_rows(metrics: list[str], protocol: Protocol, bootstrap: int) -> tuple[str, ...]:
    """Layers whose generated rows must be kept: bootstrap intervals of FID/sFID resample them."""
    if not bootstrap:
        return ()
    return tuple(sorted({protocol.layers[m] for m in metrics if m in ("fid", "sfid")}))


def side_from_features(fs: FeatureSet, describe: dict[str, Any]) -> Side:
    """A side from features extracted elsewhere (runs, shards merged across ranks)."""
    return _from_features(fs, describe)


def moments_of(rows: np.ndarray) -> GaussianMoments:
    """Gaussian moments of feature rows."""
    return GaussianMoments(rows.shape[1]).update(rows)


def bank_of(rows: np.ndarray) -> FeatureBank:
    """A feature bank of rows."""
    return FeatureBank(rows.shape[1]).update(rows)


def score(real: Path, fake: Path, protocol: Protocol, metrics: list[str],
          weights: dict[str, str] | None = None, device: str = "cpu", batch_size: int = 50,
          workers: int | None = None, bootstrap: int = 0, cache: bool = True) -> dict[str, Any]:
    """Score `fake` against `real`: one pass per extractor and side, every metric from it."""
    from diffbench.features import build_extractor

    protocol.check_metrics(metrics)
    start = time.perf_counter()
    out: dict[str, Any] = {"metrics": {}, "extractors": {}, "inputs": {}, "timings": {}}
    real_src, fake_src = open_side(real), open_side(fake)  # data problems before weights ones
    for p in passes(protocol, metrics):
        names = list(p.metrics)
        extractor = build_extractor(p.extractor, p.resize, weights, device)
        real_side = load_side(real_src, names, extractor, p.protocol, False, batch_size,
                              workers, cache)
        fake_side = load_side(fake_src, names, extractor, p.protocol, True, batch_size,
                              workers, False, bootstrap_rows(names, p.protocol, bootstrap))
        out["metrics"].update(compute_all(real_side, fake_side, p.protocol, names,
                                          extractor.fingerprint_hash(), bootstrap))
        out["extractors"][extractor.name] = extractor.fingerprint()
        out["inputs"].setdefault("real", real_side.describe)
        out["inputs"].setdefault("fake", fake_side.describe)
        out["counts"] = {"real": real_side.n, "fake": fake_side.n}
        for side, s in (("real", real_side), ("fake", fake_side)):
            key = f"{side}_features" + ("" if p.extractor == protocol.extractor else
                                        f"_{p.extractor}")
            out["timings"][key] = round(s.seconds, 3)
    out["metrics"] = {m: out["metrics"][m] for m in _order(metrics, out["metrics"])}
    out["timings"]["total"] = round(time.perf_counter() - start, 3)
    return out


def open_side(path: str | Path) -> Path | Any:
    """A statistics file stays a path; images (folder, .npz) are opened and listed now."""
    path = Path(path)
    return path if stats_lib.is_stats_file(path) else open_images(path)


def _order(asked: list[str], values: dict[str, Any]) -> list[str]:
    expanded = [k for m in asked for k in (("precision", "recall") if m == "prc" else (m,))]
    return [k for k in expanded if k in values]
