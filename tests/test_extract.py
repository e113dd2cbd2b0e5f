"""How `extract` schedules the CPU: loader workers and network threads that do not oversubscribe."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import diffbench.cpu as cpu
import diffbench.extract as ex
from diffbench.data.folder import FolderSource


@pytest.mark.parametrize(("cores", "device", "workers"), [
    (2, "cpu", 0), (1, "cpu", 0), (4, "cpu", 1), (16, "cpu", 1),
    (2, None, 1), (4, "cuda", 3), (16, "cuda:1", 8)])
def test_default_workers(monkeypatch, cores, device, workers):
    monkeypatch.setattr(cpu, "cores", lambda: cores)
    assert cpu.default_workers(device) == workers


def _mean_pixel(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.astype(np.float32).mean(axis=(0, 1)))


class ThreadRecorder:
    """Records the torch thread count the network would run with; features = mean pixel."""

    name = "thread-recorder"
    device = torch.device("cpu")

    def __init__(self):
        self.threads: list[int] = []

    def preprocessor(self):
        return _mean_pixel

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        self.threads.append(torch.get_num_threads())
        return {"mean": batch}


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    return FolderSource(tmp_path)


@pytest.mark.parametrize(("cores", "workers", "inside"), [(2, 0, 2), (4, 1, 3)])
def test_cpu_pass_leaves_a_core_per_worker_and_restores_threads(monkeypatch, folder, cores,
                                                                  workers, inside):
    monkeypatch.setattr(cpu, "cores", lambda: cores)
    before = torch.get_num_threads()
    torch.set_num_threads(max(before, inside))
    try:
        rec = ThreadRecorder()
        fs = ex.extract(folder, rec, moments=("mean",), banks=("mean",), batch_size=4)
        assert fs.n == 6 and set(rec.threads) == {inside}
        assert torch.get_num_threads() == max(before, inside)  # restored
        expected = np.stack([folder[i].astype(np.float32).mean(axis=(0, 1)) for i in range(6)])
        assert np.allclose(fs.banks["mean"].array(), expected)
    finally:
        torch.set_num_threads(before)


def test_explicit_workers_keep_the_thread_count(monkeypatch, folder):
    monkeypatch.setattr(cpu, "cores", lambda: 4)
    rec = ThreadRecorder()
    ex.extract(folder, rec, banks=("mean",), batch_size=3, workers=1)
    assert set(rec.threads) == {torch.get_num_threads()}


_FAULTS = """
import ctypes, resource, sys

# Transparent huge pages would fault a 48 MB block in ~23 steps instead of one per 4 KiB page;
# turn them off for this process (Linux >= 3.15) so the count below means the same everywhere.
ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE
import torch
if sys.argv[1] == "keep":
    from diffbench.cpu import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()  # idempotent
for i in range(20):
    if i == 10:  # glibc needs a few rounds to settle where aligned blocks go
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.ones(12_000_000)  # 48 MB, freed at once
    del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="glibc mallopt")
@pytest.mark.procs
def test_keep_freed_memory_stops_refaulting_large_blocks():
    # 48 MB is above glibc's largest dynamic mmap threshold (32 MiB on 64-bit), so by default
    # each allocation is a fresh mmap and torch.ones touches every page of it: at least
    # 48e6 / page size faults apiece (11,718 with 4 KiB pages), 10 allocations measured. With
    # the thresholds raised the freed block is reused: fewer faults than ONE fresh block would
    # cost proves that no measured allocation was a fresh mapping.
    per_block = 48_000_000 // os.sysconf("SC_PAGE_SIZE")

    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True,
                             text=True, check=True)
        return int(out.stdout.strip())

    default, kept = faults("default"), faults("keep")
    assert default >= 10 * per_block
    assert kept < per_block
