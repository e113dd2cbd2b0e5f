"""Fault injection for tests: kill this process for real at a named point of a writer.

Writers call ``maybe_fail("<point>")`` just before the step a crash could interrupt. When the
environment variable ``DIFFBENCH_FAULT`` equals that point, the process sends itself SIGKILL:
no cleanup handler runs, exactly as when the machine or a scheduler kills a job. Unset (always,
outside tests), a call costs one dictionary lookup.

Points: ``png-rename`` (a PNG written to its temporary name, not yet renamed), ``manifest-line``
(half of a manifest line written and flushed), ``before-score`` (the store merged, scoring not
started), ``results-write`` and ``stats-write`` (a file written to its temporary name by
`diffbench.fsutil.atomic_write`, not yet renamed).
"""

from __future__ import annotations

import os
import signal

ENV = "DIFFBENCH_FAULT"


def maybe_fail(point: str) -> None:
    """SIGKILL this process when ``$DIFFBENCH_FAULT`` names `point`."""
    if os.environ.get(ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
