"""How diffbench uses a CPU: loader workers, network threads and the allocator.

Measured on the 2-core AMD EPYC development machine (torch 2.14.1), Inception features of 256²
PNGs (`benchmarks/bench_score.py`, `benchmarks/bench_inception_forward.py`):

- Workers. The network's threads already use every core; a loader worker decoding beside them
  stalls them at each barrier more than the decoding costs (73.6 ms per image with one worker vs
  68.6 ms with none, decoding in the main process; a worker at nice 19 did no better). So a CPU
  pass gets no worker on 2 cores or fewer, one on more, and one network thread fewer per worker.
- Allocator. A forward pass allocates and frees activations of tens of MB; glibc serves those
  with mmap and returns them to the kernel at once, so every call faults its pages in again
  (≈480k page faults per 150 images, 3–6% of the time). `keep_freed_memory` raises glibc's
  mmap and trim thresholds so that freed blocks are reused: peak memory is unchanged, but the
  process does not shrink after its peak. The CLI calls it once at start; Python users may.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Any

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 64 << 20  # blocks above this still come from mmap (glibc may cap it lower)
_TRIM_THRESHOLD = 1 << 30
_tuned: bool | None = None


def cores() -> int:
    """CPU cores this process may run on."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return n or 1


def default_workers(device: Any = None) -> int:
    """Loader workers when none are asked for.

    Without a device, or on a GPU: one per core beyond the main process, at most 8 (the paired and
    alignment loaders, whose workers also do per-pair work, use this). For feature extraction on
    the CPU: none on 2 cores or fewer, else one (see the module notes).
    """
    import torch  # here, so that the CLI can import this module without torch

    n = cores()
    if device is not None and torch.device(device).type == "cpu":
        return 0 if n <= 2 else 1
    return max(1, min(8, n - 1))


def cpu_threads(workers: int) -> int:
    """Network threads on the CPU beside `workers` loader workers: the cores left, at least 1."""
    return max(1, cores() - workers)


def keep_freed_memory() -> bool:
    """Let glibc keep freed blocks up to 64 MB for reuse (see the module notes); idempotent.

    Returns whether the setting took effect (False off glibc, e.g. on macOS or Windows).
    """
    global _tuned
    if _tuned is None:
        _tuned = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
                              and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
            except (OSError, AttributeError):  # no glibc (musl has no mallopt)
                _tuned = False
    return _tuned
