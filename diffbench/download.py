"""Downloads shared by weights (`diffbench.weights`) and reference data (`diffbench.refdata`).

A file is fetched into ``<target>.part``, resumed with an HTTP ``Range`` request when a partial
file is there (a server that ignores it sends the whole file again, which then replaces the
part), checked by the caller's `check` while still a ``.part``, and only then renamed to its
name: a file under its final name has always passed its check. A part that fails the check is
deleted, so the next fetch starts over.

`is_offline` is diffbench's one answer to "may we use the network?": ``DIFFBENCH_OFFLINE`` or
``HF_HUB_OFFLINE`` set to a true value (1, true, yes, on; as huggingface_hub reads its own).
Every download refuses then, and the adapters load hub models from the local cache only.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from diffbench.errors import DiffbenchError
from diffbench.fsutil import atomic_write
from diffbench.log import logger, progress

_CHUNK = 1 << 20
OFFLINE_VARS = ("DIFFBENCH_OFFLINE", "HF_HUB_OFFLINE")
_TRUE = ("1", "true", "yes", "on")


def offline_variable() -> str | None:
    """The variable that turns downloads off (``DIFFBENCH_OFFLINE=1``), or None when online."""
    for name in OFFLINE_VARS:
        value = os.environ.get(name, "").strip()
        if value.lower() in _TRUE:
            return f"{name}={value}"
    return None


def is_offline() -> bool:
    """True when downloads are off (``DIFFBENCH_OFFLINE`` or ``HF_HUB_OFFLINE`` is true)."""
    return offline_variable() is not None


def diffbench_home() -> Path:
    """diffbench's own folder (``$DIFFBENCH_HOME``, default ``~/.cache/diffbench``)."""
    return Path(os.environ.get("DIFFBENCH_HOME") or Path.home() / ".cache" / "diffbench").expanduser()


def _receive(url: str, part: Path, timeout: float, desc: str) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already whole: nothing left to send
            return
        raise
    with response:
        mode = "ab" if have and response.status == 206 else "wb"
        logger.info("downloading %s from %s%s", desc, url,
                    f" (resuming at {have} bytes)" if mode == "ab" else "")
        length = response.headers.get("Content-Length")
        total = -(-int(length) // _CHUNK) if length and length.isdigit() else None
        chunks = iter(lambda: response.read(_CHUNK), b"")
        with open(part, mode) as out:
            for chunk in progress(chunks, desc=f"download {desc}", total=total, unit="MiB"):
                out.write(chunk)


def download(url: str, target: Path, check: Callable[[Path], None], desc: str,
             error: type[DiffbenchError], fix: str, timeout: float = 60.0,
             force: bool = False) -> Path:
    """Fetch `url` to `target` (resuming a ``.part``), run `check` on it, then rename it; a
    `target` already there (offline too) is only checked, unless `force`.

    A network failure, or downloads turned off (`is_offline`), raises `error` naming the URL and
    `fix`; a failed `check` deletes the part and lets its error through.
    """
    if target.is_file() and not force:
        check(target)
        return target
    off = offline_variable()
    if off is not None:
        raise error(f"cannot download {desc}: downloads are off ({off}); {fix}, or unset "
                    f"{off.split('=')[0]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")  # kept there until it passes its check
    try:
        _receive(url, part, timeout, desc)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise error(f"cannot download {desc} from {url} ({exc}); {fix}") from exc
    try:
        check(part)
    except DiffbenchError:
        part.unlink(missing_ok=True)
        raise
    part.replace(target)
    return target


def import_copy(src: str | Path, target: Path, check: Callable[[Path], None],
                error: type[DiffbenchError]) -> Path:
    """Run `check` on a file copied from elsewhere, then place it at `target` atomically."""
    src = Path(src).expanduser()
    if not src.is_file():
        raise error(f"{src}: file not found")
    check(src)
    with open(src, "rb") as fh:
        return atomic_write(target, lambda out: shutil.copyfileobj(fh, out))
