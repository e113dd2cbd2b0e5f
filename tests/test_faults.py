"""Faults: kills, a full disk, permissions, corrupt cache entries, decompression bombs, Ctrl-C.

Each case asserts the exit code, a one-line message naming the path and the fix, no traceback, no
temporary file left behind, and, after rerunning the same command, results equal to a run that
was never interrupted. Kills are real SIGKILLs of a subprocess at a named point
(`diffbench.faults`, ``DIFFBENCH_FAULT``); a full disk is a writer that fails with ENOSPC once a
byte budget is spent (after writing part of the file, as a real disk does).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from diffbench import fsutil, results
from diffbench import stats as stats_lib
from diffbench.cli import main
from tests._faults import (
    ROOT,
    Disk,
    cli_process,
    cli_run,
    garbage,
    no_checksum,
    one_error,
    png_header_only,
    shift_mu,
    temp_files,
    truncate,
    warnings_of,
    zero,
)
from tests.conftest import write_images

SUITE = """
name: faults
version: 1
tasks:
  digits:
    condition: class
    generation: {images_per_condition: 6, seed: 1, sampler: {num_classes: 10}}
    protocol: demo-digits
    metrics: {fid: {}, isc: {args: {splits: 2}}, prc: {}}
    reference:
      dataset: {name: digits, reader: sklearn-digits, args: {size: 32, split: test}}
"""


@pytest.fixture(scope="module")
def sides(tmp_path_factory):
    """Two folders of 40 images each (real, fake) for `diffbench score --protocol demo-digits`."""
    root = tmp_path_factory.mktemp("sides")
    return write_images(root / "real", 40, 0), write_images(root / "fake", 40, 1, shift=40)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def score(real, fake, *extra):
    return invoke("score", "--real", real, "--fake", fake, "--protocol", "demo-digits",
                  "--metrics", "fid,prc", "--workers", "0", *extra)


def values(record: dict) -> dict[str, float]:
    return {k: v["value"] for k, v in record["metrics"].items()}


def cache_dir() -> Path:
    return stats_lib.cache_dir()


# ---------------------------------------------------------------- a disk that fills up


def test_full_disk_while_writing_results(sides, tmp_path, monkeypatch):
    real, fake = sides
    base = score(real, fake, "--no-cache", "--json", tmp_path / "clean.json")
    assert base.exit_code == 0, base.output
    out = tmp_path / "res" / "r.json"
    with monkeypatch.context() as patch:
        patch.setattr(fsutil, "open", Disk(300).open, raising=False)
        line = one_error(score(real, fake, "--no-cache", "--json", out),
                         f"{out}: no space left on device", "rerun the same command")
    assert not out.exists() and not temp_files(tmp_path), line
    assert score(real, fake, "--no-cache", "--json", out).exit_code == 0
    assert values(results.read(out)) == values(results.read(tmp_path / "clean.json"))
    assert not temp_files(tmp_path)


def test_full_disk_while_writing_the_cache(sides, tmp_path, monkeypatch):
    real, fake = sides
    base = score(real, fake, "--no-cache", "--json", tmp_path / "clean.json")
    assert str(cache_dir()).startswith(os.environ["DIFFBENCH_HOME"])  # the test's own home
    with monkeypatch.context() as patch:
        patch.setattr(fsutil, "open", Disk(1000).open, raising=False)
        one_error(score(real, fake, "--json", tmp_path / "a.json"), str(cache_dir()),
                  "no space left on device", "DIFFBENCH_HOME", "--no-cache")
    assert not temp_files(cache_dir()) and not list(cache_dir().glob("*.npz"))
    assert score(real, fake, "--json", tmp_path / "a.json").exit_code == 0
    assert len(list(cache_dir().glob("*.npz"))) == 1 and not temp_files(cache_dir())
    assert values(results.read(tmp_path / "a.json")) == values(results.read(
        tmp_path / "clean.json")) and base.exit_code == 0


def test_full_disk_while_writing_pngs(tmp_path, monkeypatch):
    import diffbench.generate as gen

    suite = tmp_path / "s.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    args = ["run", suite, "--model", "toy", "--model-arg", "size=32"]
    clean = invoke(*args, "--out", tmp_path / "clean")
    assert clean.exit_code == 0, clean.output
    run_dir = tmp_path / "full"
    with monkeypatch.context() as patch:
        patch.setattr(gen, "open", Disk(20_000).open, raising=False)  # about 20 PNGs
        one_error(invoke(*args, "--out", run_dir), str(run_dir), "no space left on device",
                  "rerun the same command")
    res = invoke(*args, "--out", run_dir)
    assert res.exit_code == 0, res.output
    assert not temp_files(run_dir)
    names = sorted(p.name for p in (run_dir / "samples" / "digits").glob("*.png"))
    assert names == sorted(p.name for p in (tmp_path / "clean" / "samples" / "digits").glob("*.png"))
    for name in names:
        assert (run_dir / "samples" / "digits" / name).read_bytes() == (
            tmp_path / "clean" / "samples" / "digits" / name).read_bytes()
    assert values(results.read(run_dir / "results" / "digits.json")) == values(
        results.read(tmp_path / "clean" / "results" / "digits.json"))


# ---------------------------------------------------------------- where outputs go


def test_json_pointing_at_a_folder_fails_before_the_work(sides, tmp_path):
    real, fake = sides
    one_error(score(real, fake, "--json", tmp_path), f"--json {tmp_path}: is a folder",
              "results.json")
    (tmp_path / "file").write_text("x")
    one_error(score(real, fake, "--json", tmp_path / "file" / "r.json"), "is a file")


def test_json_dash_writes_only_the_record_to_stdout(sides):
    real, fake = sides
    res = score(real, fake, "--no-cache", "--json", "-")
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)  # nothing else on stdout
    assert record["kind"] == "score" and set(record["metrics"]) == {"fid", "precision", "recall"}
    assert "fid" in res.stderr  # the table went to stderr
    assert not Path("-").exists()


def test_stats_output_that_is_a_folder(sides, tmp_path):
    one_error(invoke("stats", "compute", sides[0], "--protocol", "demo-digits", "-o", tmp_path),
              "-o", "is a folder")


# ---------------------------------------------------------------- permissions


PERMISSION_SCRIPT = """
import json, sys
from click.testing import CliRunner
from diffbench.cli import main
out = {}
for name, args in json.loads(sys.argv[1]).items():
    res = CliRunner().invoke(main, args)
    out[name] = [res.exit_code, res.output]
print(json.dumps(out))
"""


def _without_dac_override() -> list[str]:
    """A command prefix under which permission bits apply (root bypasses them otherwise)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permission bits cannot be tested")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


@pytest.mark.slow  # one subprocess (it imports torch)
@pytest.mark.procs
def test_permission_denied_on_real_and_fake(sides, tmp_path):
    real, fake = sides
    prefix = _without_dac_override()
    cases, targets = {}, []
    for name, which in (("fake_file", "fake"), ("real_file", "real"), ("real_folder", "real")):
        side = tmp_path / name / which
        shutil.copytree(real if which == "real" else fake, side)
        targets.append(side if name == "real_folder" else side / "0003.png")
        os.chmod(targets[-1], 0)
        pair = (side, fake) if which == "real" else (real, side)
        cases[name] = ["score", "--real", str(pair[0]), "--fake", str(pair[1]), "--protocol",
                       "demo-digits", "--metrics", "fid", "--workers", "0"]
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([*prefix, sys.executable, "-c", PERMISSION_SCRIPT,
                               json.dumps(cases)], env=env, capture_output=True, text=True,
                              timeout=600)
    finally:
        for target in targets:
            os.chmod(target, 0o755)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    for name, (code, text) in out.items():
        assert code == 2 and "Traceback" not in text, (name, text)
        line = [x for x in text.splitlines() if x.startswith("diffbench: error:")]
        assert len(line) == 1 and "permission denied" in line[0], (name, text)
        assert "corrupt" not in line[0]
    assert f"{tmp_path / 'fake_file' / 'fake' / '0003.png'}:" in out["fake_file"][1]
    assert f"{tmp_path / 'real_file' / 'real' / '0003.png'}:" in out["real_file"][1]
    assert f"{tmp_path / 'real_folder' / 'real'}:" in out["real_folder"][1]


# ---------------------------------------------------------------- decompression bombs


def test_decompression_bomb_is_one_line_and_the_limit_is_an_option(sides, tmp_path,
                                                                   monkeypatch):
    real, fake = sides
    # --max-pixels sets DIFFBENCH_MAX_PIXELS (for the loader workers): restore it afterwards
    monkeypatch.setenv("DIFFBENCH_MAX_PIXELS", "")
    bomb = tmp_path / "fake"
    shutil.copytree(fake, bomb)
    png_header_only(bomb / "9999.png", 15000, 15000)
    with pytest.raises(Image.DecompressionBombError):  # what PIL itself does with it
        Image.open(bomb / "9999.png")
    one_error(score(real, bomb, "--no-cache"), "9999.png: 225,000,000 pixels",
              "limit of 178,956,970", "--max-pixels")
    small = tmp_path / "small"
    shutil.copytree(fake, small)
    one_error(score(real, small, "--no-cache", "--max-pixels", 64 * 63),
              "0000.png: 64×64 = 4,096 pixels, more than the limit of 4,032")
    monkeypatch.setenv("DIFFBENCH_MAX_PIXELS", "4032")
    one_error(score(real, small, "--no-cache"), "limit of 4,032")
    monkeypatch.setenv("DIFFBENCH_MAX_PIXELS", "lots")
    one_error(score(real, small, "--no-cache"), "DIFFBENCH_MAX_PIXELS='lots'")
    monkeypatch.delenv("DIFFBENCH_MAX_PIXELS")
    assert score(real, small, "--no-cache", "--max-pixels", 4096).exit_code == 0


# ---------------------------------------------------------------- the statistics cache


@pytest.mark.parametrize("spoil", [truncate, zero, garbage, shift_mu, no_checksum])
def test_a_damaged_cache_entry_is_discarded_and_recomputed(sides, tmp_path, spoil):
    real, fake = sides
    assert score(real, fake, "--json", tmp_path / "first.json").exit_code == 0
    (entry,) = cache_dir().glob("*.npz")
    spoil(entry)
    res = score(real, fake, "--json", tmp_path / "second.json")
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert values(results.read(tmp_path / "second.json")) == values(
        results.read(tmp_path / "first.json"))
    assert stats_lib.load(entry, require_checksum=True).n == 40  # healed
    assert not temp_files(cache_dir())


def test_damaged_cache_entry_warning(sides, tmp_path):
    real, fake = sides
    assert score(real, fake).exit_code == 0
    (entry,) = cache_dir().glob("*.npz")
    shift_mu(entry)
    with warnings_of("diffbench") as seen:
        assert score(real, fake).exit_code == 0
    assert any(str(entry) in w and "checksum mismatch" in w and "recomputing" in w
               for w in seen), seen


def test_an_altered_user_statistics_file_is_an_error(sides, tmp_path):
    real, fake = sides
    stats = tmp_path / "real.npz"
    assert invoke("stats", "compute", real, "--protocol", "demo-digits", "-o", stats,
                  "--workers", "0").exit_code == 0
    assert invoke("score", "--real", stats, "--fake", fake, "--protocol", "demo-digits",
                  "--workers", "0").exit_code == 0
    shift_mu(stats)
    one_error(invoke("score", "--real", stats, "--fake", fake, "--protocol", "demo-digits",
                     "--workers", "0"), f"{stats}: checksum mismatch", "stats compute")
    zero(stats)
    one_error(invoke("stats", "show", stats), "the file is empty")


def test_orphaned_temporary_files_are_removed(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    orphan = folder / f".t.json.{fsutil.HOST}.{dead}.tmp"
    alive = folder / f".t.json.{fsutil.HOST}.{os.getppid()}.tmp"
    foreign = folder / f".t.json.otherhost.{dead}.tmp"
    old_foreign = folder / f".u.json.otherhost.{dead}.tmp"
    for p in (orphan, alive, foreign, old_foreign):
        p.write_text("{")
    day_ago = time.time() - fsutil.FOREIGN_AGE_S - 60
    os.utime(old_foreign, (day_ago, day_ago))
    fsutil.atomic_write(folder / "x.json", b"{}")
    left = {p.name for p in folder.iterdir()}
    assert left == {"x.json", alive.name, foreign.name}


# ---------------------------------------------------------------- kills and Ctrl-C


@pytest.mark.slow  # a subprocess (imports torch)
@pytest.mark.procs
def test_killed_while_writing_the_cache(sides, tmp_path):
    real, fake = sides
    clean = score(real, fake, "--no-cache", "--json", tmp_path / "clean.json")
    assert clean.exit_code == 0
    args = ["score", "--real", real, "--fake", fake, "--protocol", "demo-digits", "--metrics",
            "fid,prc", "--workers", "0", "--json", tmp_path / "r.json"]
    killed = cli_run(args, {"DIFFBENCH_FAULT": "stats-write"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert temp_files(cache_dir()) and not list(cache_dir().glob("[!.]*.npz"))
    res = invoke(*args)  # the same command again
    assert res.exit_code == 0, res.output
    assert not temp_files(cache_dir()) and len(list(cache_dir().glob("*.npz"))) == 1
    assert values(results.read(tmp_path / "r.json")) == values(results.read(
        tmp_path / "clean.json"))


@pytest.mark.slow  # a subprocess (imports torch)
@pytest.mark.procs
def test_killed_while_writing_the_results(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    args = ["run", suite, "--model", "toy", "--model-arg", "size=32"]
    assert invoke(*args, "--out", tmp_path / "clean").exit_code == 0
    run_dir = tmp_path / "killed"
    killed = cli_run([*args, "--out", run_dir], {"DIFFBENCH_FAULT": "results-write"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert temp_files(run_dir / "results") and not (run_dir / "results" / "digits.json").exists()
    res = invoke(*args, "--out", run_dir)
    assert res.exit_code == 0, res.output
    assert not temp_files(run_dir)
    assert values(results.read(run_dir / "results" / "digits.json")) == values(
        results.read(tmp_path / "clean" / "results" / "digits.json"))


@pytest.mark.slow  # a subprocess (imports torch)
@pytest.mark.procs
def test_sigint_exits_130_and_the_rerun_completes(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    args = ["run", suite, "--model", "toy", "--model-arg", "size=32", "--model-arg",
            "delay=0.05", "--batch-size", "2"]
    run_dir = tmp_path / "int"
    proc = cli_process([*args, "--out", run_dir], start_new_session=True)
    samples = run_dir / "samples" / "digits"
    deadline = time.monotonic() + 300
    while len(list(samples.glob("*.png"))) < 6 and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never started generating"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1] == ("diffbench: interrupted; rerun the same command "
                                            "to resume")
    assert 6 <= len(list(samples.glob("*.png"))) < 60  # stopped half way
    res = invoke(*args, "--out", run_dir)
    assert res.exit_code == 0, res.output
    assert "generated" in res.output and not temp_files(run_dir)
    assert invoke(*args, "--out", tmp_path / "clean").exit_code == 0
    assert values(results.read(run_dir / "results" / "digits.json")) == values(
        results.read(tmp_path / "clean" / "results" / "digits.json"))
