"""Test-wide fixtures: no network except loopback, an isolated user config and diffbench home."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

# Under pytest-xdist (`make test` runs a worker per core, docs/development.md) each worker gets
# its share of the cores for torch's OpenMP pool and numpy's BLAS, set before either is imported
# (xdist sets the worker count before it loads this file) and inherited by the processes a test
# starts. By default every worker would start a thread per core: two workers on 2 cores spent
# twice the CPU time spinning (13.5 min for the suite instead of 6). A value the user set wins.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, str(max(1, (_cores or 1) // _WORKERS)))

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NetworkBlocked(OSError):
    """Raised when a test tries to reach a non-loopback address."""


def _is_loopback(sock: socket.socket, address) -> bool:
    if sock.family == getattr(socket, "AF_UNIX", None):
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: resolving it would already leave the machine


def _guarded_connect(self: socket.socket, address):
    if not _is_loopback(self, address):
        raise NetworkBlocked(f"tests may not reach the network (tried {address!r})")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address):
    if not _is_loopback(self, address):
        raise NetworkBlocked(f"tests may not reach the network (tried {address!r})")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Refuse every connection that is not to loopback (or a Unix socket)."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    yield


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Each test gets its own user config, diffbench home and torch home."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("DIFFBENCH_CONFIG", str(home / "config.yaml"))
    monkeypatch.setenv("DIFFBENCH_HOME", str(home / "diffbench"))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for key in list(os.environ):
        if key.startswith("DIFFBENCH_DATA_"):
            monkeypatch.delenv(key)
    yield


# The files whose code decides the random Inception's bytes (architecture, calibration images).
_INCEPTION_SOURCES = ("features/random_weights.py", "features/inception_net.py",
                      "features/resize.py")


def _inception_key() -> str:
    """What the random Inception's bytes depend on: its code, torch, Python and the machine."""
    import hashlib
    import platform

    import torch

    import diffbench

    h = hashlib.sha256()
    for name in _INCEPTION_SOURCES:
        h.update((Path(diffbench.__file__).parent / name).read_bytes())
    h.update(f"{torch.__version__} {platform.python_version()} {platform.machine()}".encode())
    return h.hexdigest()[:20]


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory, request):
    """A seeded, BatchNorm-calibrated random Inception in torch-fidelity's format.

    Building it costs ~15 CPU-s, so the file is kept in pytest's cache folder (.pytest_cache)
    keyed by `_inception_key`; without the cache plugin (`-p no:cacheprovider`, as CI runs) it is
    built. test_features_inception.py::test_make_inception_weights_is_seeded checks it equals a
    fresh build."""
    from diffbench.features.random_weights import make_inception_weights
    from diffbench.fsutil import atomic_write

    path = tmp_path_factory.mktemp("weights") / "inception-random.pth"
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return make_inception_weights(path)
    kept = cache.mkdir("diffbench-weights") / f"inception-random-{_inception_key()}.pth"
    if not kept.is_file():
        atomic_write(kept, make_inception_weights(path).read_bytes())
    else:
        path.write_bytes(kept.read_bytes())
    return path


def write_images(folder, n, seed, size=(64, 64), shift=0):
    """n smooth random RGB PNGs (upsampled noise), deterministic in `seed`."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rs = np.random.RandomState(seed)
    for i in range(n):
        base = rs.randint(0, 256, (16, 16, 3)).astype(int) + shift
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize(size, Image.BILINEAR)
        img.save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="session")
def image_sets(tmp_path_factory):
    """Two folders of 60 images of 64×64 from different distributions: (real, fake)."""
    root = tmp_path_factory.mktemp("images")
    return write_images(root / "real", 60, 0), write_images(root / "fake", 60, 1, shift=40)
