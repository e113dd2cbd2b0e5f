"""Logging and progress-bar conventions, in one place.

Library code never prints. It logs to the ``diffbench`` logger and wraps long loops in
`progress`, which is silent when stderr is not a terminal or when the CLI ran with ``--quiet``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

logger = logging.getLogger("diffbench")

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence progress bars and info logs (``--quiet``)."""
    global _quiet
    _quiet = quiet
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def is_quiet() -> bool:
    """True when progress output is suppressed."""
    return _quiet


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Set up the ``diffbench`` logger for the CLI: one handler on stderr."""
    set_quiet(quiet)
    if verbose and not quiet:
        logger.setLevel(logging.DEBUG)
    if not any(getattr(h, "_diffbench", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("diffbench: %(message)s"))
        handler._diffbench = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False


def progress_enabled() -> bool:
    """Progress bars show only on an interactive stderr, never with --quiet or DIFFBENCH_NO_PROGRESS."""
    if _quiet or os.environ.get("DIFFBENCH_NO_PROGRESS"):
        return False
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None,
             unit: str = "it") -> Iterator[T]:
    """Wrap a long loop in a tqdm bar that follows the conventions above."""
    return iter(tqdm(iterable, desc=desc, total=total, unit=unit, disable=not progress_enabled(),
                     dynamic_ncols=True, leave=False))
