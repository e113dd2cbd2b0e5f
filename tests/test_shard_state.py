"""The one merge of the scoring families' shard states (`diffbench.scoring.base`): every reduction
kind on emulated ranks (threads whose `dist.gather_objects` is an all-gather among them), each
rank getting the state one process computes over all the items."""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import pytest
import torch

from diffbench import dist
from diffbench.extract import extract
from diffbench.scoring.base import (
    REDUCTIONS,
    EvalContext,
    batch_share,
    merge_part,
    merge_ranks,
    on_my_share,
)
from diffbench.scoring.distribution import sharded_extract

BATCH = 4
ROWS = np.arange(22 * 3, dtype=np.float32).reshape(22, 3)[::-1] * 0.5  # not sorted
HOW = {"rows": "cat", "n": "sum", "total": "sum", "sizes": "sum", "low": "min", "high": "max"}


def _state(mine: list[int]) -> dict:
    """A shard state with a part of each reduction kind (None: this rank has no rows)."""
    rows, sizes = ROWS[mine], Counter(f"{i % 3}x" for i in mine)  # counts by key: image sizes
    return {"rows": rows, "n": len(mine), "total": rows.sum(0, dtype=np.float64), "sizes": sizes,
            "low": rows.min(0) if len(mine) else None,
            "high": rows.max(0) if len(mine) else None}


def emulated_ranks(monkeypatch, world: int, fn) -> list:
    """``fn(ctx)`` on `world` emulated ranks (threads taking turns between gathers;
    `dist.gather_objects` gathers among them): each rank's result."""
    barrier = threading.Barrier(world, timeout=60)
    slots: list = [None] * world
    local = threading.local()

    turn = threading.Lock()  # one rank computes at a time, as alone on its machine

    def gather_objects(obj):
        slots[local.rank] = obj
        turn.release()
        try:
            barrier.wait()
            out = list(slots)
            barrier.wait()  # every rank has read this gather before any writes the next
        finally:
            turn.acquire()
        return out

    monkeypatch.setattr(dist, "world_size", lambda: world)
    monkeypatch.setattr(dist, "gather_objects", gather_objects)
    results: list = [None] * world
    threads = torch.get_num_threads()

    def rank(r: int) -> None:
        local.rank = r
        torch.set_num_threads(threads)  # OpenMP's count is per thread: kernels split as in main
        with turn:
            try:
                results[r] = fn(EvalContext(batch_size=BATCH, workers=0, rank=r, world_size=world))
            except Exception as exc:  # a failed rank fails the test instead of hanging the others
                results[r] = exc
                barrier.abort()

    ranks = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for t in ranks:
        t.start()
    for t in ranks:
        t.join()
    errors = [e for e in results if isinstance(e, Exception)]
    if errors:  # the rank's own error, not the broken barrier the others saw
        raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)),
                   errors[0])
    return results


def merged(monkeypatch, world: int, n: int, compute, how) -> tuple[list, list]:
    """(each rank's merged state, each rank's items) of `on_my_share` on emulated ranks."""
    shares: dict[int, list[int]] = {}

    def fn(ctx):
        def mine(indices):
            shares[ctx.rank] = indices
            return compute(indices)
        return on_my_share(n, ctx, mine, how)

    return emulated_ranks(monkeypatch, world, fn), [shares[r] for r in range(world)]


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def test_every_kind_is_tested():
    assert set(HOW.values()) == set(REDUCTIONS)


@pytest.mark.parametrize("world,n", [(3, 22), (2, 22), (3, 5), (1, 22)],
                         ids=["3-ranks", "2-ranks", "a-rank-without-batches", "1-process"])
def test_every_rank_gets_one_process_state(monkeypatch, world, n):
    states, shares = merged(monkeypatch, world, n, _state, HOW)
    one = _state(list(range(n)))
    for state in states:
        _same(state, one)
    assert sorted(i for s in shares for i in s) == list(range(n))


def test_cat_puts_interleaved_whole_batches_back_in_item_order(monkeypatch):
    # 22 items in batches of 4 on 3 ranks: rank 1 holds batches 1 and 4, not items 8..15
    assert batch_share(22, BATCH, 1, 3) == [4, 5, 6, 7, 16, 17, 18, 19]
    states, shares = merged(monkeypatch, 3, 22, lambda mine: {"rows": ROWS[mine]},
                            {"rows": "cat"})
    assert shares == [batch_share(22, BATCH, r, 3) for r in range(3)]
    for state in states:
        assert np.array_equal(state["rows"], ROWS) and state["rows"].dtype == ROWS.dtype


def test_a_float_sum_is_added_in_rank_order():
    parts = [np.array([0.1]), np.array([0.2]), np.array([0.3])]
    assert merge_part("sum", parts, [[0], [1], [2]], 3)[0] == (0.1 + 0.2) + 0.3


def test_cat_refuses_rows_that_do_not_cover_the_items():
    with pytest.raises(RuntimeError, match="3 rows of 4 items"):
        merge_part("cat", [ROWS[:2], ROWS[2:3]], [[0, 1], [2]], 4)


def test_an_unknown_reduction_is_refused():
    with pytest.raises(ValueError, match="unknown reductions \\['mean'\\]"):
        merge_ranks({"x": 1.0}, {"x": "mean"}, [0], 1)


class _Pixels:
    """A tiny extractor: the first 4×4 pixels of an image as features, twice."""

    name = "pixels"
    device = torch.device("cpu")

    def preprocessor(self):
        return lambda image: torch.from_numpy(image[:4, :4].reshape(-1).astype(np.float32) / 7)

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"a": batch, "b": batch * 3 + 1}


def test_distribution_features_on_emulated_ranks_equal_one_process(monkeypatch):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (4 + i % 2, 4, 3), dtype=np.uint8) for i in range(22)]
    one = extract(images, _Pixels(), ("a",), ("a", "b"), BATCH, 0)
    for part in emulated_ranks(monkeypatch, 3, lambda ctx: sharded_extract(ctx)(
            images, _Pixels(), ("a",), ("a", "b"), BATCH, 0)):
        assert (part.n, part.sizes) == (one.n, one.sizes) and part.moments.keys() == {"a"}
        _same(part.moments["a"].to_dict(), one.moments["a"].to_dict())  # bit for bit
        for layer in ("a", "b"):
            assert np.array_equal(part.banks[layer].array(), one.banks[layer].array())
