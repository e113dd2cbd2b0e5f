"""Reading an image set once through an extractor and feeding every metric state.

Loader workers (or, on a small CPU, the main process) decode and resize; the main process runs
the network in batches and updates, per layer, mergeable Gaussian moments (FID/sFID: float64
sums, memory flat in N) and/or float32 feature banks (KID, precision/recall, IS). A bad image
never becomes a traceback from a worker: the worker returns its error and the main process raises
it as one line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from diffbench.cpu import cpu_threads, default_workers
from diffbench.errors import DiffbenchError, ImageError
from diffbench.log import progress
from diffbench.metrics.states import FeatureBank, GaussianMoments


@dataclass
class FeatureSet:
    """What one pass over an image set leaves: moments and banks per layer."""

    n: int = 0
    moments: dict[str, GaussianMoments] = field(default_factory=dict)
    banks: dict[str, FeatureBank] = field(default_factory=dict)
    seconds: float = 0.0
    sizes: dict[str, int] = field(default_factory=dict)


class _Prepared(Dataset):
    def __init__(self, source, preprocess: Callable[[np.ndarray], torch.Tensor]):
        self.source = source
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        try:
            image = self.source[i]
            return self.preprocess(image), f"{image.shape[0]}x{image.shape[1]}", None
        except DiffbenchError as exc:
            return None, None, str(exc)


def _collate(items):
    # Runs in the worker: errors travel back as data and are raised by the main process.
    errors = [err for _, _, err in items if err is not None]
    if errors:
        return None, [], errors
    return torch.stack([x for x, _, _ in items]), [s for _, s, _ in items], []


def extract(source, extractor, moments: tuple[str, ...] = (), banks: tuple[str, ...] = (),
            batch_size: int = 50, workers: int | None = None, desc: str = "features",
            indices: list[int] | None = None) -> FeatureSet:
    """One pass over `source` (or the `indices` subset of it) through `extractor`."""
    device = getattr(extractor, "device", torch.device("cpu"))
    chosen = workers is None
    workers = default_workers(device) if chosen else workers
    threads = torch.get_num_threads()
    if chosen and torch.device(device).type == "cpu" and workers:
        torch.set_num_threads(min(threads, cpu_threads(workers)))
    try:
        return _extract(source, extractor, moments, banks, batch_size, workers, desc, indices)
    finally:
        torch.set_num_threads(threads)


def _extract(source, extractor, moments, banks, batch_size, workers, desc, indices) -> FeatureSet:
    data = _Prepared(source, extractor.preprocessor())
    if indices is not None:
        data = torch.utils.data.Subset(data, indices)
    loader = DataLoader(data, batch_size=batch_size, num_workers=workers, shuffle=False,
                        collate_fn=_collate, persistent_workers=False,
                        prefetch_factor=4 if workers else None)
    result = FeatureSet()
    start = time.perf_counter()
    for batch, sizes, errors in progress(loader, desc=f"extract {extractor.name} {desc}",
                                         total=len(data), unit="images",
                                         count=lambda b: len(b[1])):
        if errors:
            raise ImageError(errors[0])
        feats = extractor.forward(batch)
        _update(result, feats, moments, banks)
        result.n += len(batch)
        for s in sizes:
            result.sizes[s] = result.sizes.get(s, 0) + 1
    result.seconds = time.perf_counter() - start
    return result


def _update(result: FeatureSet, feats: dict[str, torch.Tensor], moments, banks) -> None:
    for layer in moments:
        arr = feats[layer].numpy()
        if not np.isfinite(arr).all():
            from diffbench.errors import MetricInputError

            raise MetricInputError(f"the extractor produced NaN/inf {layer} features; check "
                                   "the weights file and the images")
        state = result.moments.setdefault(layer, GaussianMoments(arr.shape[1]))
        state.update(arr)
    for layer in banks:
        bank = result.banks.setdefault(layer, FeatureBank(feats[layer].shape[1]))
        bank.update(feats[layer].numpy())
