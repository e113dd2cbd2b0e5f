"""Progress in logs: phase lines, periodic done/total lines with rate and ETA when stderr is not a
terminal, one closing line per phase with its timing; --quiet, --verbose, DIFFBENCH_PROGRESS."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from diffbench import log

ROOT = Path(__file__).resolve().parent.parent
PERIODIC = re.compile(r"(\d+)/(\d+) (\w+) \((\d+)%\), .+/s, elapsed \S+, ETA \S+$")


@pytest.fixture
def lines(monkeypatch):
    """Messages the diffbench logger emits (INFO and up), as the CLI configures it."""
    seen: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = _Keep()
    log.logger.addHandler(handler)
    log.set_quiet(False)
    yield seen
    log.logger.removeHandler(handler)
    log.set_quiet(False)


def test_lines_mode_reports_start_every_step_and_end(lines, monkeypatch):
    monkeypatch.setenv("DIFFBENCH_PROGRESS", "lines")
    monkeypatch.setenv("DIFFBENCH_PROGRESS_INTERVAL", "3600")  # only the 10% steps are due
    batches = [list(range(5))] * 20  # 100 images in batches of 5
    assert list(log.progress(batches, "generate x", total=100, unit="images", count=len)) \
        == batches
    assert lines[0] == "generate x: 100 images"
    periodic = [m for m in lines if PERIODIC.search(m)]
    done = [int(PERIODIC.search(m).group(1)) for m in periodic]
    assert done == [10, 20, 30, 40, 50, 60, 70, 80, 90]  # every 10%, not at 100%
    assert re.fullmatch(r"generate x: done, 100 images in [\d.]+ s \(.+\)", lines[-1])
    assert len(lines) == 11


def test_the_interval_reports_between_steps(lines, monkeypatch):
    monkeypatch.setenv("DIFFBENCH_PROGRESS", "lines")
    monkeypatch.setenv("DIFFBENCH_PROGRESS_INTERVAL", "1e-9")  # due after every item
    monkeypatch.setenv("DIFFBENCH_PROGRESS_STEP", "100")
    list(log.progress(range(4), "extract", total=1000, unit="images"))
    assert sum(bool(PERIODIC.search(m)) for m in lines) >= 4  # (and the timer's, if due)
    lines.clear()
    list(log.progress(iter(range(3)), "unknown total"))  # no total: counts, no ETA
    assert lines[0] == "unknown total: started" and lines[-1].startswith("unknown total: done, 3")


def test_quiet_off_and_empty_loops_say_nothing(lines, monkeypatch):
    monkeypatch.setenv("DIFFBENCH_PROGRESS", "lines")
    list(log.progress(range(0), "empty", total=0))
    log.set_quiet(True)
    list(log.progress(range(5), "quiet", total=5))
    log.set_quiet(False)
    monkeypatch.setenv("DIFFBENCH_NO_PROGRESS", "1")
    list(log.progress(range(5), "off", total=5))
    assert lines == []


def test_inner_loops_report_only_when_verbose(lines, monkeypatch):
    monkeypatch.setenv("DIFFBENCH_PROGRESS", "lines")
    list(log.progress(range(5), "KID", total=5, unit="subsets", detail=True))
    assert lines == []
    log.logger.setLevel(logging.DEBUG)  # what --verbose sets
    list(log.progress(range(5), "KID", total=5, unit="subsets", detail=True))
    assert lines[0] == "KID: 5 subsets" and lines[-1].startswith("KID: done, 5 subsets")


def test_bar_mode_closes_with_the_timing_line(lines, monkeypatch, capsys):
    monkeypatch.setenv("DIFFBENCH_PROGRESS", "bar")
    list(log.progress(range(5), "generate y", total=5, unit="images"))
    assert len(lines) == 1 and lines[0].startswith("generate y: done, 5 images in ")
    monkeypatch.setenv("DIFFBENCH_PROGRESS", "auto")
    assert log.progress_mode() == ("bar" if sys.stderr.isatty() else "lines")
    monkeypatch.setenv("DIFFBENCH_PROGRESS", "sometimes")
    assert log.progress_mode() in ("bar", "lines")  # warned, then auto


def test_ranks_prefix_their_lines(lines, monkeypatch):
    monkeypatch.setenv("DIFFBENCH_PROGRESS", "lines")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    list(log.progress(range(2), "generate z", total=2))
    assert all(m.startswith("[rank 1] generate z") for m in lines)


def _piped(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "DIFFBENCH_PROGRESS_INTERVAL": "2", **env}
    for key in ("DIFFBENCH_NO_PROGRESS", "DIFFBENCH_PROGRESS"):
        full.pop(key, None)
    return subprocess.run([sys.executable, "-m", "diffbench", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=1800)  # stderr: a pipe


@pytest.mark.slow
@pytest.mark.procs
def test_demo_with_piped_stderr_logs_periodic_progress(tmp_path):
    """The demo suite (fewer images) as `make demo | tee log` runs it: stderr is a pipe."""
    env = {"OMP_NUM_THREADS": "1", "DIFFBENCH_HOME": str(tmp_path / "home"),
           "DIFFBENCH_CONFIG": str(tmp_path / "config.yaml")}
    res = _piped("run", "demo", "--model", "demo-sit", "--out", str(tmp_path / "run"),
                 "--batch-size", "4", "--set",
                 "tasks.digits-sde-cfg.generation.images_per_condition=3", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    err = [x.removeprefix("diffbench: ") for x in res.stderr.splitlines()]
    assert "generate digits-sde-cfg: 30 images" in err  # the phase starts
    periodic = [x for x in err if x.startswith("generate digits-sde-cfg: ") and PERIODIC.search(x)]
    assert periodic, res.stderr  # every 10% (8 batches of 4) or 2 s
    m = PERIODIC.search(periodic[0])
    assert m.group(2) == "30" and m.group(3) == "images" and 0 < int(m.group(1)) < 30
    assert any(re.match(r"generate digits-sde-cfg: done, 30 images in [\d.]+ s", x) for x in err)
    assert any(re.match(r"extract digits-classifier .*: done, 30 images in [\d.]+ s", x)
               for x in err)  # the scoring phase's timing
    quiet = _piped("-q", "run", "demo", "--model", "demo-sit", "--out", str(tmp_path / "run"),
                   "--rescore", "--set", "tasks.digits-sde-cfg.generation.images_per_condition=3",
                   env=env, cwd=tmp_path)
    assert quiet.returncode == 0
    assert not [x for x in quiet.stderr.splitlines() if "images" in x and "done" in x]


@pytest.mark.procs
def test_score_logs_its_timings(tmp_path, image_sets):
    """The logging, not the network, is under test: the small demo-digits protocol's."""
    real, fake = image_sets
    res = _piped("score", "--real", str(real), "--fake", str(fake), "--metrics", "fid",
                 "--protocol", "demo-digits", "--workers", "0",
                 env={"DIFFBENCH_HOME": str(tmp_path / "home")}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    done = [x for x in res.stderr.splitlines() if re.search(r": done, 60 images in [\d.]+ s", x)]
    assert len(done) == 2, res.stderr  # one closing line with its timing per side
    assert all(x.startswith("diffbench: extract digits-classifier") for x in done)


@pytest.fixture
def timed(monkeypatch):
    """(monotonic time, message) of each diffbench log record (INFO and up)."""
    import time

    seen: list[tuple[float, str]] = []

    class _Keep(logging.Handler):
        def emit(self, record):
            seen.append((time.monotonic(), record.getMessage()))

    handler = _Keep()
    log.logger.addHandler(handler)
    log.set_quiet(False)
    yield seen
    log.logger.removeHandler(handler)
    log.set_quiet(False)


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times[:-1], times[1:], strict=True)]


def test_a_slow_batch_still_gets_a_line_every_interval(timed, monkeypatch):
    """The interval is a clock: one batch of half the total taking 2 s still reports every
    0.2 s (done/total, rate, ETA), as a 30 s interval does for a batch of minutes."""
    import time

    monkeypatch.setenv("DIFFBENCH_PROGRESS", "lines")
    monkeypatch.setenv("DIFFBENCH_PROGRESS_INTERVAL", "0.2")

    def batches():
        for _ in range(2):
            time.sleep(2.0)
            yield list(range(50))

    start = time.monotonic()
    list(log.progress(batches(), "generate slow", total=100, unit="images", count=len))
    times, msgs = [t for t, _ in timed], [m for _, m in timed]
    assert msgs[0] == "generate slow: 100 images" and times[0] - start < 0.1
    assert msgs[-1].startswith("generate slow: done, 100 images")
    periodic = [m for m in msgs if PERIODIC.search(m)]
    assert len(periodic) >= 10, msgs  # ~19 expected; a loaded machine may skip a few
    assert any(m.startswith("generate slow: 0/100 images (0%)") for m in periodic)
    assert any(m.startswith("generate slow: 50/100 images (50%)") for m in periodic)
    # the rule itself, with 0.8 s of slack for a loaded machine (the batch takes 2 s)
    assert max(_gaps(times)) < 1.0, _gaps(times)


def test_a_quiet_inner_loop_reports_only_when_it_outlasts_the_interval(timed, monkeypatch):
    import time

    monkeypatch.setenv("DIFFBENCH_PROGRESS", "lines")
    monkeypatch.setenv("DIFFBENCH_PROGRESS_INTERVAL", "0.2")
    list(log.progress(range(3), "PR radii", total=3, unit="blocks", detail=True))
    assert timed == []  # quick: nothing without --verbose

    def slow():
        for i in range(3):
            time.sleep(0.5)
            yield i

    list(log.progress(slow(), "PR radii", total=3, unit="blocks", detail=True))
    msgs = [m for _, m in timed]
    assert msgs and all(PERIODIC.search(m) and m.startswith("PR radii: ") for m in msgs), msgs


def test_run_with_a_slow_model_never_goes_quiet(timed, monkeypatch, tmp_path):
    """`diffbench run` with a slow model (the toy adapter, 0.3 s per image, batches of 8 take
    2.4 s): during generation no two lines are further apart than the interval (0.3 s here,
    30 s by default) plus slack for a loaded machine; the first line comes at once."""
    import time

    from click.testing import CliRunner

    from diffbench.cli import main

    monkeypatch.setenv("DIFFBENCH_PROGRESS", "lines")
    monkeypatch.setenv("DIFFBENCH_PROGRESS_INTERVAL", "0.3")
    monkeypatch.setenv("DIFFBENCH_HOME", str(tmp_path / "home"))
    start = time.monotonic()
    res = CliRunner().invoke(main, [
        "run", "demo", "--model", "toy", "--model-arg", "delay=0.3", "--batch-size", "8",
        "--limit", "16", "--out", str(tmp_path / "run"), "--workers", "0"])
    assert res.exit_code == 0, res.output
    msgs = [m for _, m in timed]
    first = next(i for i, m in enumerate(msgs) if m == "generate digits-sde-cfg: 16 images")
    last = next(i for i, m in enumerate(msgs) if m.startswith("generate digits-sde-cfg: done"))
    assert timed[0][0] - start < 10, msgs[:3]
    phase = [t for t, _ in timed[first:last + 1]]
    assert len(phase) >= 8, msgs  # 4.8 s of generation at one line per 0.3 s
    assert max(_gaps(phase)) < 1.3, (_gaps(phase), msgs)  # a batch takes 2.4 s
