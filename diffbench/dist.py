"""torch.distributed helpers: rank, world size, barrier, gathering objects across ranks; shards."""

from __future__ import annotations

import atexit
import os

from diffbench.errors import ConfigError


def _dist():
    import torch.distributed as dist
    return dist if dist.is_available() else None


def init_from_env(device: str = "cpu") -> bool:
    """Initialise torch.distributed from torchrun variables (gloo on CPU, nccl on CUDA)."""
    dist = _dist()
    if dist is None or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        # Torn down before the interpreter exits: a process leaving with the group alive can
        # abort in gloo's threads ("terminate called without an active exception", SIGABRT
        # after the work is done), which torchrun reports as a failed rank.
        atexit.register(_close)
    return True


def _close() -> None:
    dist = _dist()
    if dist is not None and dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    """This process's rank (0 without torch.distributed)."""
    dist = _dist()
    return dist.get_rank() if dist is not None and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without torch.distributed)."""
    dist = _dist()
    return dist.get_world_size() if dist is not None and dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0."""
    return rank() == 0


def barrier() -> None:
    """Wait for all ranks (no-op with one process)."""
    if world_size() > 1:
        _dist().barrier()


def parse_shard(text: str) -> tuple[int, int]:
    """Parse `i/N` (0 <= i < N) into (i, N)."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard '{text}': expected i/N, e.g. 0/4") from None
    if not 0 <= i < n:
        raise ConfigError(f"--shard '{text}': need 0 <= i < N")
    return i, n


def gather_objects(obj: object) -> list[object]:
    """Every rank's `obj`, in rank order (a one-element list without torch.distributed)."""
    if world_size() <= 1:
        return [obj]
    out: list[object] = [None] * world_size()
    _dist().all_gather_object(out, obj)
    return out

