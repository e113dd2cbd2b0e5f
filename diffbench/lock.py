"""One writer per run directory: a lock on ``RUN/.diffbench.lock`` held for the whole run.

The rule (``fcntl.flock``, so the operating system releases a lock when its process dies,
SIGKILL included, and no stale lock is ever left behind):

- ``diffbench run`` and ``diffbench generate`` hold an exclusive lock. Under torchrun rank 0
  takes it for the job; the other ranks wait for rank 0's answer and write only after it got
  the lock (torchrun stops every rank when one dies).
- ``--shard i/N`` processes of a job array write disjoint keys side by side: each holds a shared
  lock on ``.diffbench.lock`` (so no plain run can start beside them, nor they beside it) and an
  exclusive one on ``.diffbench.lock.shard-i-of-N`` (so one shard never runs twice at once).

A process that cannot get its lock fails at once with exit code 2, naming the holder's PID.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from diffbench.errors import DiffbenchError
from diffbench.log import logger

LOCK_NAME = ".diffbench.lock"


class RunDirInUse(DiffbenchError):
    """Another process is writing into the run directory."""


@dataclass
class RunLock:
    """Locks held on a run directory (open descriptors); `release` or process death frees them."""

    run_dir: Path
    fds: list[int] = field(default_factory=list)

    def release(self) -> None:
        """Close the descriptors, which drops the locks."""
        while self.fds:
            os.close(self.fds.pop())

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise DiffbenchError(f"{path.parent}: cannot create the run directory's lock file "
                             f"({exc.strerror or exc}); choose another --out") from None


def _try(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as exc:  # e.g. ENOLCK on a network filesystem without lock support
        logger.warning("the run directory cannot be locked (%s): nothing stops a second run "
                       "from writing into it at the same time", exc.strerror or exc)
        return True


def _write_holder(fd: int) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.now().astimezone().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)


def _holder(path: Path) -> dict:
    try:
        info = json.loads(path.read_text())
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _live_shard(run_dir: Path) -> tuple[str, dict] | None:
    """A shard that holds its lock now (its name and holder), if any."""
    for path in sorted(run_dir.glob(f"{LOCK_NAME}.shard-*")):
        fd = os.open(path, os.O_RDONLY)
        try:
            if not _try(fd, fcntl.LOCK_SH):
                return path.name.rsplit(".shard-", 1)[1].replace("-of-", "/"), _holder(path)
        finally:
            os.close(fd)
    return None


def _in_use(run_dir: Path, info: dict, what: str = "") -> RunDirInUse:
    started = info.get("started", "unknown time")
    host = info.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return RunDirInUse(f"{run_dir} is in use by {what}PID {info.get('pid', '?')}{where} (started "
                       f"{started}); wait for it or use another --out")


def lock_run_dir(run_dir: str | Path, shard: tuple[int, int] | None = None) -> RunLock:
    """Take the run directory's lock (exclusive; shared plus the shard's own under `--shard`)."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DiffbenchError(f"--out {run_dir}: cannot create the run directory "
                             f"({exc.strerror or exc}); choose another --out") from None
    lock = RunLock(run_dir)
    main = run_dir / LOCK_NAME
    lock.fds.append(_open(main))
    if shard is None:
        if not _try(lock.fds[0], fcntl.LOCK_EX):
            lock.release()
            live = _live_shard(run_dir)
            raise _in_use(run_dir, live[1], f"shard {live[0]}, ") if live else \
                _in_use(run_dir, _holder(main))
        _write_holder(lock.fds[0])
        return lock
    if not _try(lock.fds[0], fcntl.LOCK_SH):
        lock.release()
        raise _in_use(run_dir, _holder(main))
    own = run_dir / f"{LOCK_NAME}.shard-{shard[0]}-of-{shard[1]}"
    lock.fds.append(_open(own))
    if not _try(lock.fds[1], fcntl.LOCK_EX):
        lock.release()
        raise _in_use(run_dir, _holder(own), f"shard {shard[0]}/{shard[1]}, ")
    _write_holder(lock.fds[1])
    return lock


def live_writer(path: str | Path) -> str | None:
    """Who is writing the run directory that holds `path` (the folder itself, or a store or
    file up to three levels below it) right now, in words; None when nobody is."""
    path = Path(path).resolve()
    for folder in [path, *path.parents][:4]:
        main = folder / LOCK_NAME
        if not main.is_file():
            continue
        fd = os.open(main, os.O_RDONLY)
        try:
            free = _try(fd, fcntl.LOCK_SH)
        finally:
            os.close(fd)
        live = None if free else ("", _holder(main))
        live = live or _live_shard(folder)
        if live is None:
            return None
        what, info = live
        shard = f"shard {what}, " if what else ""
        return (f"the run in {folder} ({shard}PID {info.get('pid', '?')}, started "
                f"{info.get('started', 'unknown time')})")
    return None
