"""At most N images of a set, drawn as layer6ai-labs/dgm-eval draws them (its ``--nsample``).

dgm-eval lists a folder's files sorted; when there are more than N it seeds numpy's global
generator with its ``--seed`` (13579 by default), keeps ``np.random.choice(len(files), N,
replace=False)`` and sorts the chosen indices. `dgm_eval_draw` makes the same draw from a
``np.random.RandomState(seed)`` of its own (the Mersenne Twister stream ``np.random.seed(seed)``
gives the global state, without touching it), over the source's own sorted order (a folder's
files by relative path). `SubsetSource` is the kept images, in that order.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np


def dgm_eval_draw(n: int, max_images: int, seed: int) -> np.ndarray:
    """The sorted indices of the `max_images` of `n` rows dgm-eval keeps (all when n ≤ max)."""
    if n <= max_images:
        return np.arange(n)
    return np.sort(np.random.RandomState(seed).choice(n, max_images, replace=False))


class SubsetSource:
    """The rows `indices` of an image source, with its keys and files when it has them."""

    def __init__(self, base: Any, indices: np.ndarray, seed: int):
        self.base, self.indices, self.seed = base, np.asarray(indices), seed
        keys = getattr(base, "keys", None)
        self.keys = [keys[i] for i in self.indices] if keys is not None else None
        paths = getattr(base, "paths", None)
        if paths is None and keys is not None and callable(getattr(base, "path", None)):
            paths = [base.path(k) for k in keys]  # a run's sample store
        self.paths = [paths[i] for i in self.indices] if paths is not None else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.base[int(self.indices[i])]

    def note(self) -> dict[str, Any]:
        """What the record says about the draw."""
        n = len(self.base)
        return {"from": n, "kept": len(self), "dropped": n - len(self), "seed": self.seed,
                "rule": "dgm-eval: np.random.seed(seed); "
                        "sorted(np.random.choice(n, kept, replace=False)) of the sorted files"}

    def describe(self) -> dict[str, Any]:
        """The base source's description, with its count and the draw."""
        return {**self.base.describe(), "n": len(self), "subsample": self.note()}

    def content_hash(self) -> str:
        """The base's content hash and the draw (a function of its size, the limit and seed)."""
        draw = f"{self.base.content_hash()}:dgm-eval-draw:{len(self)}:{self.seed}"
        return hashlib.sha256(draw.encode()).hexdigest()


def at_most(source: Any, max_images: int, seed: int) -> Any:
    """`source` itself when it holds at most `max_images` rows, else dgm-eval's draw of them."""
    if len(source) <= max_images:
        return source
    return SubsetSource(source, dgm_eval_draw(len(source), max_images, seed), seed)
