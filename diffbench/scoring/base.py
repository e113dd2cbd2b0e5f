"""The contract between `diffbench run` and the metric families that score a task.

Every metric's spec (`diffbench.metrics.spec.MetricSpec`) names its ``family``.
`diffbench.scoring.evaluate_task` groups a task's metrics by family and calls each family's
evaluator once, so a family reads each image once for all of its metrics:

    evaluate(metrics: list[str], inputs: TaskInputs, ctx: EvalContext) -> FamilyResult

The families (``diffbench.metrics.spec.FAMILIES``) and their evaluators (``EVALUATORS``):

- ``distribution``: generated set vs reference set through one extractor (FID, sFID, KID, IS,
  precision/recall, class accuracy);
- ``paired``: each generated image against its own ground truth (SSIM, LPIPS);
- ``alignment``: each generated image against its subject's reference images or its prompt
  (DINO, CLIP-I, CLIP-T).

Every evaluator follows the same steps: plan its metrics from their resolved settings, list the
items of the task, read them in batches (`read_batches`; the distribution family's extractor
pass, `diffbench.extract`), compute a shard state over this rank's items, merge it across ranks,
and write each metric's entries with `metric_entry`, the one builder of a record's metric
entries. A family differs only in what it computes.

A shard state is a mapping of named parts, each declared with a reduction (`REDUCTIONS`):
``cat`` (rows, put back in the global item order one process has them), ``sum``, ``min``,
``max``. Under ``torchrun`` every rank calls the evaluator; `on_my_share` gives each rank whole
global batches (`batch_share`) and `merge_ranks` merges its state part by part through
`diffbench.dist`, so every rank holds the same merged state, computes the same values, and
rank 0 writes them. Values computed from ``cat`` rows are bit-identical to one process's.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from diffbench import dist
from diffbench.data.base import Item
from diffbench.data.samples import SampleSet
from diffbench.errors import DataError, DiffbenchError
from diffbench.protocols import Protocol
from diffbench.resolve import ResolvedMetric, ResolvedTask, resolve_task

if TYPE_CHECKING:  # a type only: scoring reads a task, it never loads suites
    from diffbench.suite import TaskSpec

EVALUATORS: dict[str, str] = {  # one per name of diffbench.metrics.spec.FAMILIES
    "distribution": "diffbench.scoring.distribution:evaluate",
    "paired": "diffbench.scoring.paired:evaluate",
    "alignment": "diffbench.scoring.alignment:evaluate",
}


def batch_share(n: int, batch_size: int, rank: int, world_size: int) -> list[int]:
    """The images of the global batches b ≡ rank (mod world size), batches as one process cuts them.

    Batched kernels may round an image's values differently in another batch; giving each rank
    whole global batches keeps every image in the batch it has in a 1-process run, so results
    under torchrun are bit-identical to one process with the same batch size.
    """
    batches = range(rank, -(-n // batch_size), world_size)
    return [i for b in batches for i in range(b * batch_size, min((b + 1) * batch_size, n))]


@dataclass(frozen=True)
class EvalContext:
    """How to score: device, batching, resampling, weights files and the process group."""

    device: str = "cpu"
    batch_size: int = 50
    workers: int | None = None
    bootstrap: int = 0
    cache: bool = True
    weights: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] = field(default_factory=dict)
    rank: int = 0
    world_size: int = 1


@dataclass
class TaskInputs:
    """One task (or one point of a sweep) ready to be scored."""

    name: str
    task: TaskSpec
    protocol: Protocol
    samples: SampleSet
    dataset: Any | None = None
    reference: Any | None = None
    metric_args: dict[str, dict[str, Any]] = field(default_factory=dict)  # over the task's
    resolved: ResolvedTask | None = None  # resolved from the above when not given
    train: Any | None = None  # the model's training images (memorization metrics)
    test: Any | None = None  # their held-out images, when not the reference
    _items: dict[str, Item] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.resolved is None:
            self.resolved = resolve_task(self.task.metrics, self.protocol, self.metric_args,
                                         self.task.protocol_args)

    def metric(self, name: str) -> ResolvedMetric:
        """The metric `name` of the task as resolved (`diffbench.resolve`)."""
        return self.resolved[name]

    def item(self, sample_key: str) -> Item:
        """The dataset item a generated image belongs to."""
        if self.dataset is None:
            raise DataError(f"task {self.name}: metric needs a task dataset, the task has none")
        if self._items is None:
            self._items = {it.key: it for it in self.dataset.items()}
        item_key = self.samples.item_key(sample_key) or sample_key
        if item_key not in self._items:
            raise DataError(f"task {self.name}: generated image '{sample_key}' belongs to item "
                            f"'{item_key}', which the dataset does not have; was it generated "
                            "for another dataset version?")
        return self._items[item_key]


REDUCTIONS = ("cat", "sum", "min", "max")


def merge_part(kind: str, values: Sequence[Any], shares: Sequence[Sequence[int]], n: int) -> Any:
    """One part of every rank's state (in rank order; `shares`: each rank's items of 0..n-1)
    merged by its reduction `kind`: ``cat`` puts each rank's rows at its items' places, ``sum``
    adds (numbers, arrays, Counters; a float sum depends on the split, ``cat`` does not),
    ``min``/``max`` take the elementwise extreme. A rank with nothing for a part gives None."""
    if kind != "cat":
        given = [v for v in values if v is not None]
        pairwise = {"sum": operator.add, "min": np.minimum, "max": np.maximum}[kind]
        return functools.reduce(pairwise, given) if given else None
    given = [(idx, rows) for idx, rows in zip(shares, values, strict=True) if len(idx)]
    if sum(len(idx) for idx, _ in given) != n:
        raise RuntimeError(f"merge_part: the ranks hold {sum(map(len, shares))} rows of {n} items")
    if not given:
        return values[0]  # no items at all: rank 0's empty part
    out = np.empty((n, *given[0][1].shape[1:]), dtype=given[0][1].dtype)
    for idx, rows in given:
        out[idx] = rows
    return out


def merge_ranks(state: Mapping[str, Any], how: Mapping[str, str], mine: Sequence[int],
                n: int) -> dict[str, Any]:
    """This rank's shard state (computed over items `mine` of 0..n-1) merged across ranks, each
    part as `how` declares (`merge_part`): the same on every rank; the state itself alone."""
    if unknown := set(how.values()) - set(REDUCTIONS):
        raise ValueError(f"unknown reductions {sorted(unknown)}; one of {', '.join(REDUCTIONS)}")
    if dist.world_size() <= 1:
        return {name: state[name] for name in how}
    shares = dist.gather_objects(list(mine))
    # part by part: every rank's copy of one part at a time beside the merged ones
    return {name: merge_part(kind, dist.gather_objects(state[name]), shares, n)
            for name, kind in how.items()}


def on_my_share(n: int, ctx: EvalContext, compute: Callable[[list[int]], Mapping[str, Any]],
                how: Mapping[str, str]) -> dict[str, Any]:
    """``compute(indices)``, a shard state, over this rank's whole global batches of 0..n-1,
    merged across ranks as `how` declares (`merge_ranks`): every rank gets the same state."""
    mine = batch_share(n, ctx.batch_size, ctx.rank, ctx.world_size)
    return merge_ranks(compute(mine), how, mine, n)


class _Read:
    """``read(item)`` per item, in loader workers; a user error travels back with its row."""

    def __init__(self, items: Sequence[Any], read: Callable[[Any], Any]):
        self.items, self.read = items, read

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Any, DiffbenchError | None]:
        try:
            return self.read(self.items[i]), None
        except DiffbenchError as exc:
            return None, exc


def read_batches(items: Sequence[Any], read: Callable[[Any], Any], ctx: EvalContext, desc: str,
                 unit: str, prefetch: int = 2) -> Iterator[list[Any]]:
    """Batches of ``read(item)`` in item order (loader workers decode; the first user error
    stops the loop), with progress."""
    from torch.utils.data import DataLoader

    from diffbench.cpu import default_workers
    from diffbench.log import progress

    workers = default_workers() if ctx.workers is None else ctx.workers
    loader = DataLoader(_Read(items, read), batch_size=ctx.batch_size, shuffle=False,
                        num_workers=workers, collate_fn=list,
                        prefetch_factor=prefetch if workers else None)
    for batch in progress(loader, desc=desc, total=len(items), unit=unit, count=len):
        for _, err in batch:
            if err is not None:
                raise err
        yield [value for value, _ in batch]


@dataclass
class FamilyResult:
    """What a family's evaluator returns; `evaluate_task` merges these into one record."""

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    extractors: dict[str, dict[str, Any]] = field(default_factory=dict)
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    generated: dict[str, Any] = field(default_factory=dict)  # how the generated set was read

    def merge(self, other: FamilyResult) -> FamilyResult:
        """Combine two families' results (later values of the same key win)."""
        return FamilyResult({**self.metrics, **other.metrics},
                            {**self.extractors, **other.extractors},
                            {**self.references, **other.references},
                            {**self.counts, **other.counts},
                            {**self.timings, **other.timings}, self.notes + other.notes,
                            self.generated or other.generated)


def metric_entry(value: float, *, higher_is_better: bool, protocol: str, n: dict[str, int],
                 extractor: str | None = None, std: float | None = None,
                 ci: dict[str, Any] | None = None, scale: float | None = None,
                 **details: Any) -> dict[str, Any]:
    """One entry of a results record's ``metrics`` block (the schema's ``metric``); every family
    writes its entries with this."""
    out: dict[str, Any] = {"value": float(value), "n": n, "higher_is_better": higher_is_better,
                           "protocol": protocol}
    if extractor is not None:
        out["extractor"] = extractor
    if std is not None:
        out["std"] = float(std)
    if ci is not None:
        out["ci"] = ci
    if scale is not None:
        out["scale"] = float(scale)
    if details:
        out["details"] = details
    return out
