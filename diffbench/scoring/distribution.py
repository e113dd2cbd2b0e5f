"""The ``distribution`` family: a generated set against a reference set through an extractor.

The task's distribution metrics are grouped into passes, one per extractor (the protocol's, plus
any a metric's spec or settings name: torch-fidelity's precision/recall on VGG16); each pass
reads each side once and every metric of the pass is computed from those features, as its spec
says (`diffbench.metrics.spec`). The reference is, in order: the task's ``reference.dataset``,
its ``reference.stats`` file, or the real images of the task dataset (`reference_images()`, e.g.
VITON-HD's test persons), prepared as the protocol's ``reals`` settings say
(`diffbench.data.vton_reals`). ``diffbench score`` is this family with the two sets given.
Metrics that need the training set (`Needs.train`: ct, fls) read its rows and the held-out
set's (the task's ``test``, else the reference) beside the generated rows; the generated and
training rows they name in their details (``closest``) are named here by key and file.
Under torchrun each rank extracts its share of both sides into a shard state (`sharded_extract`)
merged across ranks by `diffbench.scoring.base.on_my_share`, so every rank computes the same
values as one process would, bit for bit.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffbench.data.base import is_task_dataset
from diffbench.data.samples import SampleSet
from diffbench.data.vton_reals import reals_for
from diffbench.errors import ConfigError, DataError, MetricInputError
from diffbench.extract import FeatureSet, extract
from diffbench.features import build_extractor
from diffbench.log import progress
from diffbench.metrics.bootstrap import interval
from diffbench.metrics.spec import NO_TRAIN, Gaussian, MetricSpec, Needs, call, get_spec, values_of
from diffbench.metrics.states import FeatureBank, GaussianMoments
from diffbench.resolve import ResolvedMetric
from diffbench.scoring.base import EvalContext, FamilyResult, TaskInputs, metric_entry, on_my_share
from diffbench.scoring.sides import Side, limited, load_side


@dataclass(frozen=True)
class Pass:
    """One pass over the images: an extractor and the layer each of its metrics reads."""

    extractor: str
    resize: str
    layers: dict[str, str]

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics this pass feeds, in the order asked."""
        return tuple(self.layers)


def passes(metrics: list[ResolvedMetric]) -> list[Pass]:
    """The extractor passes the metrics need: their protocol's extractor first, then the others."""
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for metric in metrics:
        extractor, resize, layer = metric.feature()
        groups.setdefault((extractor, resize), {})[metric.name] = layer
    protocol = metrics[0].protocol if metrics else None
    main = (protocol.extractor, protocol.resize) if protocol else None
    order = sorted(groups, key=lambda key: key != main)  # stable: the others as first asked
    return [Pass(e, r, groups[(e, r)]) for e, r in order]


def needs(p: Pass, fake: bool, bootstrap: int = 0) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(layers needing Gaussian moments, layers needing feature rows) of one side of a pass.

    The generated side also keeps the rows of moment metrics that bootstrap intervals resample.
    """
    moments: set[str] = set()
    banks: set[str] = set()
    for name, layer in p.layers.items():
        spec = get_spec(name)
        if spec.needs.form == "moments":
            moments.add(layer)
            if fake and bootstrap and spec.resample is not None:
                banks.add(layer)
        elif spec.needs.form == "rows" or fake:
            banks.add(layer)
    return tuple(sorted(moments)), tuple(sorted(banks))


def _inputs(spec: MetricSpec, layer: str, real: Side, fake: Side,
            train: Side | None = None) -> tuple[tuple, dict]:
    """The compute function's positional inputs and the entry's counts (`real`: the held-out
    set for a metric that needs the training set)."""
    form = spec.needs.form
    if spec.needs.train:
        if train is None:
            raise ConfigError(f"{spec.name}{NO_TRAIN}")
        (ref, rows), n = _inputs(dataclasses.replace(spec, needs=Needs(form="rows")), layer,
                                 real, fake)
        return (train.banks[layer], ref, rows), {"train": len(train.banks[layer]), **n}
    if form == "moments":
        for side, label in ((real, "reference"), (fake, "generated")):
            if layer not in side.gaussians:
                raise MetricInputError(f"{spec.name}: the {label} side has no {layer} statistics")
        return ((Gaussian(*real.gaussians[layer], real.n), Gaussian(*fake.gaussians[layer], fake.n)),
                {"real": real.n, "fake": fake.n})
    rows = fake.banks.get(layer)
    if form == "rows":
        ref = real.banks.get(layer)
        if ref is None or rows is None:
            raise MetricInputError(f"{spec.name} needs {layer} features of both sides (images, "
                                   "or statistics made with --keep-features)")
        return (ref, rows), {"real": len(ref), "fake": len(rows)}
    if rows is None:
        raise MetricInputError(f"{spec.name} needs the generated images (not statistics)")
    if not spec.needs.labels:
        return (rows,), {"fake": len(rows)}
    if fake.labels is None:
        raise MetricInputError(f"{spec.name} needs the requested class label of each generated "
                               "image (a class-conditional run)")
    return (rows, fake.labels), {"fake": len(rows)}


def compute_metric(metric: ResolvedMetric, layer: str, real: Side, fake: Side,
                   fingerprint: str, bootstrap: int = 0, train: Side | None = None,
                   device: str = "cpu") -> dict[str, dict[str, Any]]:
    """The results entries of one distribution metric (one per output of its spec); a compute
    function that takes ``device`` runs there (the memorization metrics' float64 kernels)."""
    spec, settings = metric.spec, metric.settings
    args, n = _inputs(spec, layer, real, fake, train)
    on = {"device": device} if "device" in inspect.signature(spec.compute).parameters else {}
    values = values_of(spec, spec.run(*args, **settings, **on))
    out = {o.key: metric_entry(values[o.key].value, higher_is_better=o.higher_is_better,
                               protocol=metric.protocol.name, n=n, extractor=fingerprint,
                               std=values[o.key].std, **values[o.key].details)
           for o in spec.outputs}
    rows = fake.banks.get(layer)
    if bootstrap and spec.resample is not None and rows is not None:
        # resample generated rows (with their labels): the reference is fixed
        head = args[:1] if spec.needs.form in ("moments", "rows") else ()
        extra = (fake.labels,) if spec.needs.labels else ()

        def resampled(idx: np.ndarray) -> float:
            return call(spec.resample, *head, rows[idx], *(e[idx] for e in extra), **settings)

        first = out[spec.outputs[0].key]
        first["ci"] = interval(resampled, np.arange(len(rows)), bootstrap, "the generated set")
    if metric.scale is not None:  # every output of the metric is shown at its scale
        for entry in out.values():
            entry["scale"] = metric.scale
    return out


def sharded_extract(ctx: EvalContext):
    """An `extract` that reads only this rank's share of the images.

    A rank's shard state (`on_my_share`): each layer's rows (``cat``), the image count and
    sizes (``sum``), its seconds (``max``). The moments are then fed the merged rows in one
    process's batches: bit-identical to a 1-process run with the same batch size (the price:
    each rank holds the N×D float32 rows of its layers, ~400 MB for 50K pool3 rows).
    """

    def run(source, extractor, moments, banks, batch_size, workers, desc="features"):
        if ctx.world_size <= 1:
            return extract(source, extractor, moments, banks, batch_size, workers, desc=desc)
        layers = tuple(sorted({*moments, *banks}))

        def shard(mine: list[int]) -> dict[str, Any]:
            fs = extract(source, extractor, (), layers, batch_size, workers, desc=desc,
                         indices=mine)  # a rank without batches has no rows: None
            return {"n": fs.n, "sizes": Counter(fs.sizes), "seconds": fs.seconds,
                    **{f"rows/{k}": fs.banks[k].array() if k in fs.banks else None
                       for k in layers}}

        how = {"n": "sum", "sizes": "sum", "seconds": "max", **{f"rows/{k}": "cat" for k in layers}}
        state = on_my_share(len(source), dataclasses.replace(ctx, batch_size=batch_size),
                            shard, how)
        out = FeatureSet(state["n"], seconds=state["seconds"], sizes=dict(state["sizes"]))
        for layer in layers:
            if (rows := state[f"rows/{layer}"]) is None:
                continue  # no images at all, as one process
            if layer in moments:
                out.moments[layer] = GaussianMoments(rows.shape[1])
                for start in range(0, len(rows), batch_size):  # one process's batches
                    out.moments[layer].update(rows[start:start + batch_size])
            if layer in banks:
                out.banks[layer] = FeatureBank(rows.shape[1]).update(rows)
        return out

    return run


def reference_of(inputs: TaskInputs) -> Any:
    """What the generated set is compared with (path, statistics file or image source)."""
    if inputs.reference is not None:
        return inputs.reference
    ref = inputs.dataset.reference_images() if is_task_dataset(inputs.dataset) else None
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


def _labels(samples: Any, rows: np.ndarray | None = None) -> np.ndarray | None:
    """The class label of each generated image (of `rows` of them when a limit cut the set)."""
    if not isinstance(samples, SampleSet):  # a score task's images: no requests behind them
        return None
    labels = [samples.condition(k).get("class") for k in samples.keys]
    if any(lab is None for lab in labels):
        return None
    out = np.asarray(labels, dtype=np.int64)
    return out if rows is None else out[rows]


def evaluate(metrics: list[str], inputs: TaskInputs, ctx: EvalContext) -> FamilyResult:
    """Every distribution metric of a task from one pass per extractor over each side."""
    resolved = [inputs.metric(m) for m in metrics]
    protocol = resolved[0].protocol
    protocol.check_metrics(metrics)
    run = sharded_extract(ctx)
    out = FamilyResult()
    values: dict[str, dict[str, Any]] = {}
    cut = inputs.resolved.protocol.inputs  # dgm-eval's max_images: each set cut once
    reference = limited(reference_of(inputs), cut, "the reference")
    samples = limited(inputs.samples, cut, "the generated images")
    sets = (limited(inputs.train, cut, "the training images"),
            limited(inputs.test, cut, "the held-out images"))
    for p in passes(resolved):
        what = ", ".join(p.metrics)
        extractor = build_extractor(p.extractor, p.resize, ctx.weights, ctx.device)
        start = time.perf_counter()
        real = load_side(reference, *needs(p, False), extractor, False, ctx.batch_size,
                         ctx.workers, ctx.cache, extract_fn=run, write_cache=ctx.rank == 0,
                         what=what)
        real_s = time.perf_counter() - start
        fake = load_side(samples, *needs(p, True, ctx.bootstrap), extractor, True,
                         ctx.batch_size, ctx.workers, False, extract_fn=run, what=what)
        if any(get_spec(m).needs.labels for m in p.metrics):
            fake.labels = _labels(inputs.samples, getattr(samples, "indices", None))
        _check_counts(real, fake, inputs)
        train, test = _memorization_sides(p, inputs, sets, extractor, ctx, run)
        layers = list(p.layers.items())  # the math (FID's eigh, KID's subsets) can take minutes
        for name, layer in progress(layers, desc=f"compute {what}", total=len(layers),
                                    unit="metrics"):
            held_out = test if test is not None and get_spec(name).needs.train else real
            values.update(compute_metric(inputs.metric(name), layer, held_out, fake,
                                         extractor.fingerprint_hash(), ctx.bootstrap, train,
                                         ctx.device))
        if train is not None:
            name_rows(values, sets[0], samples)
            out = out.merge(FamilyResult(references={
                "train": train.describe, **({"test": test.describe} if test else {})}))
        tag = "" if p.extractor == protocol.extractor else f"_{p.extractor}"
        out = out.merge(FamilyResult(
            extractors={extractor.name: extractor.fingerprint()},
            references={"real": real.describe}, counts={"real": real.n, "scored": fake.n},
            timings={f"real_features{tag}": round(real_s, 3),
                     f"fake_features{tag}": round(time.perf_counter() - start - real_s, 3)},
            generated=fake.describe))
    out.metrics = values
    return out


def _memorization_sides(p: Pass, inputs: TaskInputs, sets: tuple[Any, Any], extractor,
                        ctx: EvalContext, run) -> tuple[Side | None, Side | None]:
    """(training side, held-out side or None for the reference) of a pass's memorization
    metrics from `sets` (the task's training and held-out images, as scored); (None, None)
    when the pass has none."""
    layers = tuple(sorted({layer for m, layer in p.layers.items() if get_spec(m).needs.train}))
    if not layers:
        return None, None
    if inputs.train is None:
        asked = ", ".join(m for m in p.metrics if get_spec(m).needs.train)
        raise ConfigError(f"task {inputs.name}: {asked}{NO_TRAIN}")

    def side(source):
        return load_side(source, (), layers, extractor, False, ctx.batch_size, ctx.workers,
                         ctx.cache, extract_fn=run, write_cache=ctx.rank == 0, what="memorization")

    return side(sets[0]), side(sets[1]) if sets[1] is not None else None


def _files(source: Any) -> tuple[list[str], list[str]] | None:
    """(keys, paths) of the rows of an image source, in row order (None: not files)."""
    keys = getattr(source, "keys", None)
    if isinstance(source, SampleSet):
        return list(keys), [str(source.path(k)) for k in keys]
    paths = getattr(source, "paths", None)
    if keys is None or paths is None:
        return None
    return list(keys), [str(path) for path in paths]


def name_rows(values: dict[str, dict[str, Any]], train: Any, fake: Any) -> None:
    """Name the generated and training rows of each ``closest`` list by key and file."""
    sides = {"fake": _files(fake), "train": _files(train)}
    for entry in values.values():
        for pair in entry.get("details", {}).get("closest") or []:
            for side, files in sides.items():
                if files is not None:
                    pair[f"{side}_key"] = files[0][pair[side]]
                    pair[f"{side}_path"] = files[1][pair[side]]


def _check_counts(real: Side, fake: Side, inputs: TaskInputs) -> None:
    if fake.n == 0:
        raise DataError(f"task {inputs.name}: no generated images to score")
    if real.n == 0:
        raise MetricInputError(f"task {inputs.name}: the reference set is empty")
