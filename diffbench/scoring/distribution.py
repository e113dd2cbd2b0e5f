"""The ``distribution`` family: a generated set against a reference set through one extractor.

FID, sFID, KID, IS, precision/recall and class accuracy, as the task's protocol computes them
(`diffbench.metrics.distribution`). Each image is read once: one pass per side feeds every metric
of the family. The reference is, in order: the task's ``reference.dataset``, its ``reference.stats``
file, or the real images of the task dataset (`reference_images()`, e.g. VITON-HD's test persons),
prepared as the protocol's ``reals`` settings say (`diffbench.data.vton_reals`).
Under torchrun each rank extracts its share of both sides and the feature rows are gathered back
into global order, so every rank computes the same values as one process would, bit for bit.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from diffbench import dist
from diffbench.data.vton_reals import reals_for
from diffbench.errors import ConfigError, DataError, MetricInputError
from diffbench.extract import FeatureSet, extract
from diffbench.features import build_extractor
from diffbench.metrics.distribution import compute_all
from diffbench.metrics.states import FeatureBank, GaussianMoments
from diffbench.protocols import apply_metric_args
from diffbench.scorer import Side, bootstrap_rows, load_side, passes
from diffbench.scoring.base import EvalContext, FamilyResult, TaskInputs, batch_share


def sharded_extract(ctx: EvalContext):
    """An `extract` that reads only this rank's share of the images.

    Each rank extracts whole global batches (`batch_share`); the rows are gathered back into
    global order and the Gaussian moments accumulated from them batch by batch as one process
    does, so every value is bit-identical to a 1-process run with the same batch size (the price:
    each rank holds the N×D float32 rows of the layers it needs, ~400 MB for 50K pool3 rows).
    """

    def run(source, extractor, moments, banks, batch_size, workers, desc="features"):
        if ctx.world_size <= 1:
            return extract(source, extractor, moments, banks, batch_size, workers, desc=desc)
        n = len(source)
        mine = batch_share(n, batch_size, ctx.rank, ctx.world_size)
        part = extract(source, extractor, (), tuple(sorted({*moments, *banks})), batch_size,
                       workers, desc=desc, indices=mine)
        return _reduce(part, mine, n, moments, banks, batch_size)

    return run


def _reduce(part: FeatureSet, mine: list[int], n: int, moments, banks,
            batch_size: int) -> FeatureSet:
    out = FeatureSet(n=n, seconds=part.seconds)
    for layer in sorted(part.banks):
        rows = dist.gather_rows(part.banks[layer].array(), mine, n)
        if layer in moments:
            state = out.moments[layer] = GaussianMoments(rows.shape[1])
            for start in range(0, n, batch_size):  # the batches one process would feed
                state.update(rows[start:start + batch_size])
        if layer in banks:
            out.banks[layer] = FeatureBank(rows.shape[1]).update(rows)
    for sizes in dist.gather_objects(part.sizes):
        for size, count in sizes.items():
            out.sizes[size] = out.sizes.get(size, 0) + count
    return out


def reference_of(inputs: TaskInputs) -> Any:
    """What the generated set is compared with (path, statistics file or image source)."""
    if inputs.reference is not None:
        return inputs.reference
    ref = inputs.dataset.reference_images() if inputs.dataset is not None and callable(
        getattr(inputs.dataset, "reference_images", None)) else None
    if ref is None:
        raise ConfigError(f"task {inputs.name}: distribution metrics need a reference; add "
                          "reference: {dataset: {name, reader}} or reference: {stats: NAME} "
                          "to the task")
    if "reals" not in inputs.protocol.params:
        return ref
    # The protocol's script prepares its reals (try-on: CatVTON's resized JPEG copy of the GT).
    generated = [inputs.samples.path(k) for k in inputs.samples.keys]
    return reals_for(ref, inputs.protocol.param("reals"), generated, f"task {inputs.name}",
                     inputs.protocol.name)


def _labels(samples) -> np.ndarray | None:
    try:
        labels = [samples.condition(k).get("class") for k in samples.keys]
    except AttributeError:
        return None
    if any(lab is None for lab in labels):
        return None
    return np.asarray(labels, dtype=np.int64)


def evaluate(metrics: list[str], inputs: TaskInputs, ctx: EvalContext) -> FamilyResult:
    """Every distribution metric of a task from one pass per extractor over each side."""
    protocol = apply_metric_args(inputs.protocol, {m: inputs.metric_args.get(m, {})
                                                   for m in metrics})
    protocol.check_metrics(metrics)
    run = sharded_extract(ctx)
    out = FamilyResult()
    values: dict[str, dict[str, Any]] = {}
    reference = reference_of(inputs)
    for p in passes(protocol, metrics):
        names = list(p.metrics)
        extractor = build_extractor(p.extractor, p.resize, ctx.weights, ctx.device)
        start = time.perf_counter()
        real = load_side(reference, names, extractor, p.protocol, False, ctx.batch_size,
                         ctx.workers, ctx.cache, extract_fn=run, write_cache=ctx.rank == 0)
        real_s = time.perf_counter() - start
        fake = load_side(inputs.samples, names, extractor, p.protocol, True, ctx.batch_size,
                         ctx.workers, False, bootstrap_rows(names, p.protocol, ctx.bootstrap),
                         extract_fn=run)
        if "accuracy" in names:
            fake.labels = _labels(inputs.samples)
        _check_counts(real, fake, inputs)
        values.update(compute_all(real, fake, p.protocol, names, extractor.fingerprint_hash(),
                                  ctx.bootstrap))
        tag = "" if p.extractor == protocol.extractor else f"_{p.extractor}"
        out = out.merge(FamilyResult(
            extractors={extractor.name: extractor.fingerprint()},
            references={"real": real.describe}, counts={"real": real.n, "scored": fake.n},
            timings={f"real_features{tag}": round(real_s, 3),
                     f"fake_features{tag}": round(time.perf_counter() - start - real_s, 3)}))
    for name, entry in values.items():
        scale = protocol.param(name).get("scale")
        if scale is not None:
            entry["scale"] = float(scale)
    out.metrics = values
    return out


def _check_counts(real: Side, fake: Side, inputs: TaskInputs) -> None:
    if fake.n == 0:
        raise DataError(f"task {inputs.name}: no generated images to score")
    if real.n == 0:
        raise MetricInputError(f"task {inputs.name}: the reference set is empty")
