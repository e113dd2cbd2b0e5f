"""Writing files safely: atomic replace, temporary names, orphan clean-up, OS errors with their path.

A file is written to ``.<name>.<host>.<pid>.tmp<suffix>`` beside its final name, flushed to disk
and renamed over it, so a reader sees the old file or the new one, never half of one. Whatever
stops the write (an exception, Ctrl-C, a full disk) removes the temporary file; a process killed
outright leaves it behind, and the next write into that folder removes temporary files whose
process is gone (same host, PID not running) or that are a day old (another host). An
operating-system error becomes a `StorageError` naming the path and how to fix it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from diffbench.errors import StorageError

HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
_TEMP = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<host>[A-Za-z0-9_-]+)\.)?(?P<pid>\d+)\.tmp"
                   r"(?P<suffix>[A-Za-z0-9.]*)$")
FOREIGN_AGE_S = 24 * 3600  # a temporary file of another host is an orphan after a day
LEGACY_AGE_S = 3600  # names without a host (older versions): an hour, and the PID gone here

_FIXES = {
    errno.ENOSPC: "no space left on device; free space there (or write elsewhere) and rerun the "
                  "same command",
    errno.EDQUOT: "disk quota exceeded; free space there (or write elsewhere) and rerun the same "
                  "command",
    errno.EACCES: "permission denied; make it accessible (chmod/chown) or use another path",
    errno.EPERM: "operation not permitted; make it accessible (chmod/chown) or use another path",
    errno.EROFS: "read-only file system; use a writable path",
    errno.EFBIG: "file too large for this file system; write it elsewhere",
    errno.EISDIR: "is a folder; give a file name",
    errno.ENOTDIR: "a part of this path is a file, not a folder; remove it or use another path",
    errno.ENAMETOOLONG: "file name too long; use a shorter path",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) or use fewer workers",
}


def describe_os_error(exc: OSError, path: str | Path | None = None) -> str:
    """One line for an OS error: the path (the error's own, else `path`), what and the fix."""
    where = exc.filename if exc.filename is not None else path
    what = _FIXES.get(exc.errno or -1) or f"{exc.strerror or exc}"
    return f"{where}: {what}" if where is not None else what


def storage_error(exc: OSError, path: str | Path) -> StorageError:
    """The `StorageError` of an OS error met while writing `path`."""
    return StorageError(describe_os_error(exc, path))


def temp_path(path: Path, suffix: str = "") -> Path:
    """This process's temporary name for `path` (same folder, so the rename is atomic)."""
    return path.with_name(f".{path.name}.{HOST}.{os.getpid()}.tmp{suffix}")


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def is_orphan(path: Path, now: float | None = None) -> bool:
    """True for a temporary file (`temp_path` name) whose writer cannot be running any more."""
    match = _TEMP.match(path.name)
    if not match:
        return False
    pid, host = int(match["pid"]), match["host"]
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    if host == HOST:
        return pid != os.getpid() and not _pid_running(pid)
    if host is None:
        return age > LEGACY_AGE_S and not _pid_running(pid)
    return age > FOREIGN_AGE_S


def remove_orphans(folder: Path) -> list[Path]:
    """Remove the orphaned temporary files of `folder`; return them (best effort, never raises)."""
    removed = []
    try:
        entries = [folder / n for n in os.listdir(folder) if n.startswith(".") and ".tmp" in n]
    except OSError:
        return removed
    now = time.time()
    for path in entries:
        try:
            if is_orphan(path, now):
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported here (some network file systems): the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object] | bytes,
                 suffix: str = "", fault: str | None = None) -> Path:
    """Write `path` atomically: `write(fh)` (or the bytes) into a temporary file, fsync, rename.

    The folder is created if needed and its orphaned temporary files removed first. `suffix`
    ends the temporary name (``.npz`` for numpy). `fault` names a `diffbench.faults` point hit
    between the write and the rename. OS errors become a `StorageError` naming `path`.
    """
    from diffbench.faults import maybe_fail

    path = Path(path)
    tmp = temp_path(path, suffix)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_orphans(path.parent)
        with open(tmp, "wb") as fh:
            if isinstance(write, bytes):
                fh.write(write)
            else:
                write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if fault:
            maybe_fail(fault)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise storage_error(exc, path) from exc
        raise
    _fsync_dir(path.parent)
    return path


_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


@contextmanager
def writes_under(folder: Path) -> Iterator[None]:
    """Name `folder` in a write error that names no file (``write()`` that filled the disk)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno not in _WRITE_ERRNOS:
            raise
        raise StorageError(describe_os_error(exc, f"{folder} (while writing there)")) from exc


def file_sha256(path: str | Path, cached: bool = True) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB blocks (the one file hash of diffbench).

    With `cached` (weights, checkpoints) it is computed once per (path, size, mtime) in this
    process; `cached=False` reads the file again (images checked against a manifest).
    """
    resolved = Path(path).resolve()
    if not cached:
        return _sha256(resolved)
    st = resolved.stat()
    return _sha256_once(str(resolved), st.st_size, st.st_mtime_ns)


def hash_file_into(digest: Any, path: str | Path) -> None:
    """Feed a file's bytes to `digest` in 4 MiB blocks (for hashes over several files)."""
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    hash_file_into(digest, path)
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _sha256_once(path: str, size: int, mtime_ns: int) -> str:
    return _sha256(Path(path))
