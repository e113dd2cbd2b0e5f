"""Helpers of the fault tests: a disk that fills up, CLI and torchrun subprocesses, spoiled
statistics files, a decompression bomb's header, and one-line error checks."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

import diffbench

ROOT = Path(diffbench.__file__).resolve().parent.parent


def one_error(res, *needles: str, code: int = 2) -> str:
    out = res.output if hasattr(res, "output") else res.stdout + res.stderr
    assert (res.exit_code if hasattr(res, "exit_code") else res.returncode) == code, out
    assert "Traceback" not in out
    lines = [x for x in out.splitlines() if x.startswith("diffbench: error:")]
    assert len(lines) == 1, out
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def temp_files(*roots: Path) -> list[Path]:
    return [p for r in roots if r.exists() for p in r.rglob("*") if ".tmp" in p.name]


def _interruptible() -> None:
    # A shell without job control starts background jobs with SIGINT ignored, and Python keeps
    # an ignored SIGINT: the child gets Ctrl-C's default, as a user's terminal gives it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli_process(args, env=None, **kw) -> subprocess.Popen:
    """`python -m diffbench ARGS` in a real subprocess (this checkout first on the path)."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), "DIFFBENCH_NO_PROGRESS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "diffbench", *map(str, args)], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_interruptible, **kw)


def torchrun(ranks: int, *args: str) -> list[str]:
    """The command line of ``torchrun --nproc-per-node RANKS ARGS`` on a port it picks free
    (``--standalone``): a fixed ``--master-port`` can meet another test's torchrun, or its gloo
    connections, when pytest-xdist runs two test files at once."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            str(ranks), *map(str, args)]


def cli_run(args, env=None, timeout=600) -> subprocess.CompletedProcess:
    proc = cli_process(args, env)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


class Disk:
    """A byte budget shared by every file opened for writing through `open`."""

    def __init__(self, budget: int):
        self.left = budget
        self.real_open = open

    def open(self, file, mode="r", *args, **kwargs):
        fh = self.real_open(file, mode, *args, **kwargs)
        return _FillingFile(fh, self) if any(c in mode for c in "wax+") else fh


class _FillingFile:
    """A file whose writes fail with ENOSPC once the disk's budget is spent (after a partial write)."""

    def __init__(self, fh, disk: Disk):
        self._fh, self._disk = fh, disk

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self._disk.left:
            self._fh.write(data[:max(self._disk.left, 0)])
            self._disk.left = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._disk.left -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width × height (its pixel data is a 1×1 image's): a bomb's header."""
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then length and type of the IHDR chunk
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:ihdr + 13]))
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def zero(p: Path) -> None:
    p.write_bytes(b"")


def garbage(p: Path) -> None:
    p.write_bytes(os.urandom(4096))


def shift_mu(p: Path) -> None:
    """mu + 1, saved back with the header unchanged: what made FID 37 → 98 silently."""
    with np.load(p, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    key = next(k for k in arrays if k.startswith("mu"))
    arrays[key] = arrays[key] + 1.0
    with open(p, "wb") as fh:
        np.savez(fh, **arrays)


def no_checksum(p: Path) -> None:
    """An entry of an older diffbench (no checksum in its header)."""
    with np.load(p, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(bytes(arrays["header"]).decode())
    header.pop("sha256")
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(p, "wb") as fh:
        np.savez(fh, **arrays)


@contextmanager
def warnings_of(name: str):
    """The messages of the warnings logged to logger `name` (the CLI's handler prints them)."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                seen.append(record.getMessage())

    handler = Keep()
    logging.getLogger(name).addHandler(handler)
    try:
        yield seen
    finally:
        logging.getLogger(name).removeHandler(handler)
