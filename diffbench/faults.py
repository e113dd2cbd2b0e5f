"""Fault injection for tests: kill this process at a named point (DIFFBENCH_FAULT=<point>)."""

from __future__ import annotations

import os
import signal


def maybe_fail(point: str) -> None:
    """SIGKILL this process when the environment names `point` (tests of crash safety)."""
    if os.environ.get("DIFFBENCH_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
