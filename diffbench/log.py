"""Logging and progress conventions, in one place.

Library code never prints. It logs to the ``diffbench`` logger and wraps every long loop in
`progress` (the only user of tqdm). What a loop shows:

- on an interactive stderr (a terminal): a tqdm bar while it runs;
- on any other stderr (CI, nohup, SLURM, a pipe): log lines: one when the phase starts
  (``generate digits: 500 images``), then one every ``DIFFBENCH_PROGRESS_INTERVAL`` seconds
  (default 30) or every ``DIFFBENCH_PROGRESS_STEP`` percent of the total (default 10), whichever
  comes first, with done/total, rate and ETA. The interval is kept by a clock, not by the loop:
  a batch that takes minutes still gets a line every interval (a timer thread writes it while
  the loop waits), so a log never goes quiet for longer than the interval;
- either way, one line when the phase ends: count, time and rate (``score`` and ``run`` print
  their timings this way).

``DIFFBENCH_PROGRESS=auto|bar|lines|off`` forces a mode (``auto``: bar on a terminal, lines
otherwise; ``DIFFBENCH_NO_PROGRESS=1`` is ``off``: nothing, the timings stay in the results
records). ``--quiet`` silences all of it too; ``--verbose`` adds the inner loops (KID subsets,
precision/recall blocks) to the log lines (on a terminal their bars show anyway); without it an
inner loop that runs longer than the interval still gets the timer's lines. Under torchrun every rank reports, its lines prefixed with ``[rank R]``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

logger = logging.getLogger("diffbench")

_quiet = False
MODES = ("auto", "bar", "lines", "off")


def set_quiet(quiet: bool) -> None:
    """Silence progress and info logs (``--quiet``)."""
    global _quiet
    _quiet = quiet
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


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


def progress_mode() -> str:
    """``bar``, ``lines`` or ``off``: how loops report progress now (see the module text)."""
    if _quiet or os.environ.get("DIFFBENCH_NO_PROGRESS", "") not in ("", "0"):
        return "off"
    mode = os.environ.get("DIFFBENCH_PROGRESS", "auto").strip().lower() or "auto"
    if mode not in MODES:
        logger.warning("DIFFBENCH_PROGRESS=%s is not one of %s; using auto", mode,
                       "|".join(MODES))
        mode = "auto"
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return mode


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _rate(done: float, seconds: float, unit: str) -> str:
    if seconds <= 0 or done <= 0:
        return f"- {unit}/s"
    per_s = done / seconds
    return f"{per_s:.0f} {unit}/s" if per_s >= 100 else f"{per_s:.3g} {unit}/s"


def _prefix(desc: str) -> str:
    world = os.environ.get("WORLD_SIZE", "1")
    if world.isdigit() and int(world) > 1:
        return f"[rank {os.environ.get('RANK', '?')}] {desc}"
    return desc


class _Meter:
    """Counts a loop's work and says when a progress line is due."""

    def __init__(self, desc: str, total: int | None, unit: str):
        self.desc, self.total, self.unit = _prefix(desc), total, unit
        self.interval = _env_float("DIFFBENCH_PROGRESS_INTERVAL", 30.0)
        self.step = _env_float("DIFFBENCH_PROGRESS_STEP", 10.0)  # percent
        self.start = self.last = time.monotonic()
        self.done = 0
        self.marks = 1  # the next step due is marks * step percent
        self.lock = threading.Lock()  # the loop and the timer thread both write lines

    def advance(self, n: int) -> str | None:
        """Count `n` more; the periodic line when one is due, else None."""
        with self.lock:
            self.done += n
            now = time.monotonic()
            due = now - self.last >= self.interval
            if self.total:
                reached = self.done * 100 >= self.marks * self.step * self.total
                due = (due or reached) and self.done < self.total
                while self.done * 100 >= self.marks * self.step * self.total:
                    self.marks += 1
            if not due:
                return None
            self.last = now
            return self.line()

    def due_in(self) -> float:
        """Seconds until the interval has passed since the last line (the timer sleeps that)."""
        with self.lock:
            return max(0.005, self.last + self.interval - time.monotonic())

    def tick(self) -> str | None:
        """The periodic line when the interval has passed without one (timer thread), else None."""
        with self.lock:
            now = time.monotonic()
            if now - self.last < self.interval:
                return None
            self.last = now
            return self.line()

    def started(self) -> str:
        """The phase's first line."""
        return f"{self.desc}: {self.total} {self.unit}" if self.total else f"{self.desc}: started"

    def line(self) -> str:
        """A periodic line: done/total (percent), rate, elapsed and ETA."""
        elapsed = time.monotonic() - self.start
        text = f"{self.desc}: {self.done}"
        if self.total:
            text += f"/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%)"
        else:
            text += f" {self.unit}"
        text += f", {_rate(self.done, elapsed, self.unit)}, elapsed {_duration(elapsed)}"
        if self.total:  # no rate yet, no estimate: "ETA -"
            eta = elapsed / self.done * (self.total - self.done) if self.done else None
            text += f", ETA {_duration(eta) if eta is not None else '-'}"
        return text

    def finished(self) -> str:
        """The phase's last line: count, time and rate."""
        elapsed = time.monotonic() - self.start
        return (f"{self.desc}: done, {self.done} {self.unit} in {elapsed:.1f} s "
                f"({_rate(self.done, elapsed, self.unit)})")


class _Timer:
    """Writes the meter's line whenever the interval passes without one: a loop blocked in a
    long batch (a model call, a slow disk) still reports at the interval's pace."""

    def __init__(self, meter: _Meter, level: int):
        self.meter, self.level = meter, level
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="diffbench-progress", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.meter.due_in()):
            line = self.meter.tick()
            if line:
                logger.log(self.level, line)

    def __enter__(self) -> _Timer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None,
             unit: str = "it", count: Callable[[T], int] | None = None,
             detail: bool = False) -> Iterator[T]:
    """Wrap a long loop: a bar or progress lines, then a closing line (see the module text).

    `total` and the counts are in `unit`s; `count(item)` says how many units an item holds
    (default 1, e.g. ``len`` for batches counted in images). `detail` loops (inner loops) report
    only with ``--verbose``, except the timer's lines when they run longer than the interval.
    """
    mode = progress_mode()
    level = logging.DEBUG if detail else logging.INFO
    if total == 0 or (mode == "lines" and not logger.isEnabledFor(logging.INFO)):
        mode = "off"  # bars need no logger: a library user on a terminal still sees them
    elif mode == "lines" and not logger.isEnabledFor(level):
        mode, level = "timer", logging.INFO  # a quiet inner loop: only the timer's lines
    meter = _Meter(desc, total, unit)
    count = count or (lambda _item: 1)
    if mode == "bar":
        from tqdm.auto import tqdm

        with tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=False) as bar:
            for item in iterable:
                yield item
                n = count(item)
                meter.advance(n)
                bar.update(n)
    elif mode in ("lines", "timer"):
        if mode == "lines":
            logger.log(level, meter.started())
        items = iter(iterable)  # a DataLoader forks its workers here: before the timer thread
        with _Timer(meter, level):
            for item in items:
                yield item
                line = meter.advance(count(item))
                if line and mode == "lines":
                    logger.log(level, line)
        if mode == "timer":
            return
    else:
        yield from iterable
        return
    logger.log(level, meter.finished())
