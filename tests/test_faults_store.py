"""The sample store under faults: real SIGKILLs at named points, two writers, other models or
settings, --fresh, the twice-recorded loop, export-npz, and counts that survive a resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from diffbench import results
from diffbench.cli import main
from diffbench.gate import gate, init_baseline
from diffbench.lock import LOCK_NAME, lock_run_dir
from tests._faults import torchrun
from tests.test_generate import png_set, write_suite

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "DIFFBENCH_NO_PROGRESS": "1"}


def _gen_args(suite: Path, out: Path, *extra: str) -> list[str]:
    return ["-q", "generate", str(suite), "--model", "toy", "--batch-size", "4", "--out",
            str(out), *extra]


def _proc(args: list[str], fault: str | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**ENV, "DIFFBENCH_FAULT": fault} if fault else ENV
    return subprocess.run([sys.executable, "-m", "diffbench", *args], env=env,
                          capture_output=True, text=True, timeout=300, **kw)


def _cli(*args: str):
    return CliRunner().invoke(main, list(map(str, args)))


def _temps(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".tmp" in p.name]


def _manifest_keys(path: Path) -> list[str]:
    return [json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted toy generation of the 15-image suite."""
    tmp = tmp_path_factory.mktemp("ref")
    suite = write_suite(tmp)
    res = _cli(*_gen_args(suite, tmp / "ref"))
    assert res.exit_code == 0, res.output
    return tmp / "ref" / "samples" / "cls"


def _same_store(store: Path, ref: Path) -> None:
    assert png_set(store) == png_set(ref)
    assert (store / "manifest.jsonl").read_bytes() == (ref / "manifest.jsonl").read_bytes()
    for part in store.glob("manifest.rank*.jsonl"):
        keys = _manifest_keys(part)
        assert len(keys) == len(set(keys)), f"duplicate lines in {part.name}"
    assert not _temps(store.parent.parent)


# -- kills at named points ---------------------------------------------------------------


@pytest.mark.parametrize("fault", ["png-rename", "manifest-line"])
@pytest.mark.procs
def test_kill_at_a_writer_point_then_resume_equals_uninterrupted(tmp_path, reference, fault):
    suite = write_suite(tmp_path)
    out = tmp_path / "run"
    killed = _proc(_gen_args(suite, out), fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    store = out / "samples" / "cls"
    if fault == "png-rename":  # the first PNG is still under its temporary name
        assert _temps(store) and not list(store.glob("*.png"))
    else:  # the first batch's PNGs are there, its manifest line cut in half
        assert len(list(store.glob("*.png"))) == 4
        assert not (store / "manifest.rank0.jsonl").read_bytes().endswith(b"\n")
    res = _proc(_gen_args(suite, out))
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    _same_store(store, reference)


@pytest.mark.slow
@pytest.mark.procs
def test_kill_before_scoring_then_resume_counts_the_store(tmp_path):
    """A run killed during scoring, then resumed, records every image of the store."""
    from tests.test_run import DEMO_LIKE, write

    suite = write(tmp_path, DEMO_LIKE.replace("images_per_condition: 6", "images_per_condition: 3"))
    out = tmp_path / "r"
    args = ["-q", "run", str(suite), "--model", "toy", "--model-arg", "size=32", "--out",
            str(out), "--workers", "0"]
    killed = _proc(args, fault="before-score")
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "results").exists() and (out / "samples/digits/manifest.jsonl").is_file()
    res = _proc(args)
    assert res.returncode == 0, res.stderr
    record = results.read(out / "results" / "digits.json")
    assert record["counts"]["generated"] == record["counts"]["scored"] == 30
    assert record["generation"]["made_now"] == 0 and record["generation"]["skipped"] == 30
    assert "generated" not in record["generation"]


def test_resumed_run_has_the_counts_of_an_uninterrupted_one(tmp_path):
    from tests.test_run import DEMO_LIKE, write

    suite = write(tmp_path, DEMO_LIKE.replace("images_per_condition: 6", "images_per_condition: 3"))
    base = ["run", suite, "--model", "toy", "--model-arg", "size=32", "--workers", "0"]
    assert _cli("generate", *base[1:6], "--out", tmp_path / "r", "--limit", "7").exit_code == 0
    res = _cli(*base, "--out", tmp_path / "r")  # the rest of the images, then scoring
    assert res.exit_code == 0, res.output
    resumed = results.read(tmp_path / "r/results/digits.json")
    assert resumed["generation"]["made_now"] == 23 and resumed["generation"]["skipped"] == 7
    assert _cli(*base, "--out", tmp_path / "one").exit_code == 0
    whole = results.read(tmp_path / "one/results/digits.json")
    assert resumed["counts"] == whole["counts"] == {"planned": 30, "generated": 30, "real": 360,
                                                    "scored": 30}
    assert {k: v["value"] for k, v in resumed["metrics"].items()} == \
        {k: v["value"] for k, v in whole["metrics"].items()}
    verdict = gate(resumed, init_baseline(whole))
    assert verdict.exit_code == 0, verdict.problems
    # a record of an older diffbench ('generated' = made by the last invocation) says so
    old = json.loads(json.dumps(resumed))
    old["counts"]["generated"] = 23
    old["generation"] = {"planned": 30, "skipped": 7, "generated": 23}
    problems = gate(old, init_baseline(whole)).problems
    assert len(problems) == 1 and "older diffbench" in problems[0] and "--rescore" in problems[0]


# -- one writer per run directory ------------------------------------------------------------


def _wait_for_lock(out: Path, pid: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads((out / LOCK_NAME).read_text()).get("pid") == pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError("the first run never took the lock")


@pytest.mark.procs
def test_second_process_into_one_run_dir_exits_2_first_finishes(tmp_path, reference):
    suite = write_suite(tmp_path)
    out = tmp_path / "run"
    args = _gen_args(suite, out, "--model-arg", "delay=0.3")
    first = subprocess.Popen([sys.executable, "-m", "diffbench", *args], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lock(out, first.pid)
        os.kill(first.pid, signal.SIGSTOP)  # hold it mid-run, however slow the second starts
        try:
            second = _proc(args)
        finally:
            os.kill(first.pid, signal.SIGCONT)
    finally:
        _, err = first.communicate(timeout=300)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffbench: error: ")
    assert f"is in use by PID {first.pid}" in lines[0] and "another --out" in lines[0]
    assert first.returncode == 0, err
    _same_store(out / "samples" / "cls", reference)


def test_shards_share_the_run_dir_and_a_plain_run_waits(tmp_path, reference):
    suite = write_suite(tmp_path)
    out = tmp_path / "sh"
    with lock_run_dir(out, shard=(0, 2)):  # shard 0 is running (this process holds its lock)
        res = _cli(*_gen_args(suite, out, "--shard", "1/2"))
        assert res.exit_code == 0, res.output
        res = _cli(*_gen_args(suite, out, "--shard", "0/2"))
        assert res.exit_code == 2 and f"shard 0/2, PID {os.getpid()}" in res.output
        res = _cli(*_gen_args(suite, out))
        assert res.exit_code == 2 and f"in use by shard 0/2, PID {os.getpid()}" in res.output
    assert _cli(*_gen_args(suite, out, "--shard", "0/2")).exit_code == 0
    with lock_run_dir(out):  # a plain run holds the directory: no shard starts beside it
        res = _cli(*_gen_args(suite, out, "--shard", "1/2"))
        assert res.exit_code == 2 and f"in use by PID {os.getpid()}" in res.output
    assert _cli("merge", out).exit_code == 0
    _same_store(out / "samples" / "cls", reference)


@pytest.mark.slow
@pytest.mark.procs
def test_torchrun_ranks_share_the_lock_and_all_refuse_a_busy_dir(tmp_path, reference):
    suite = write_suite(tmp_path)
    out = tmp_path / "tr"
    run = torchrun(2, "-m", "diffbench", *_gen_args(suite, out))
    with lock_run_dir(out):  # another run holds the directory: both ranks stop, none hangs
        res = subprocess.run(run, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert res.stderr.count(f"is in use by PID {os.getpid()}") >= 2, res.stderr[-2000:]
    assert not (out / "samples").exists()
    res = subprocess.run(run, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]  # rank 0 holds the lock, rank 1 writes too
    assert sorted(p.name for p in (out / "samples/cls").glob("manifest.rank*.jsonl")) == \
        ["manifest.rank0.jsonl", "manifest.rank1.jsonl"]
    _same_store(out / "samples" / "cls", reference)


# -- a store belongs to one model and one set of settings -------------------------------------


def test_other_model_is_refused_before_loading_it(tmp_path):
    suite = write_suite(tmp_path)
    out = tmp_path / "M"
    assert _cli(*_gen_args(suite, out)).exit_code == 0
    store = out / "samples" / "cls"
    before = sorted(p.name for p in store.iterdir())
    # the checkpoint does not exist: loading the model would fail with another message
    res = _cli("generate", suite, "--model", "sit-repa", "--model-arg", "ckpt=/nonexistent.pt",
               "--out", out)
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert len(line.splitlines()) == 1
    assert 'model.name: "toy" in the store, "sit-repa" now' in line
    assert "another --out" in line and "--fresh" in line and "15 images" in line
    assert sorted(p.name for p in store.iterdir()) == before


def test_other_sampler_settings_are_refused_and_fresh_discards(tmp_path):
    suite = write_suite(tmp_path)
    out = tmp_path / "M"
    assert _cli(*_gen_args(suite, out)).exit_code == 0
    cfg = ("--set", "tasks.cls.generation.sampler.cfg_scale=7.0")
    res = _cli(*_gen_args(suite, out, *cfg))
    assert res.exit_code == 2
    assert "generation.sampler.cfg_scale: absent in the store, 7.0 now" in res.output
    for other in (("--set", "tasks.cls.generation.seed=8"), ("--dtype", "bf16"),
                  ("--model-arg", "size=24")):
        res = _cli(*_gen_args(suite, out, *other))
        assert res.exit_code == 2 and "in the store" in res.output, other
    # what cannot change pixels is not part of it
    for same in (("--batch-size", "7"), ("--limit", "5"),
                 ("--set", "tasks.cls.generation.images_per_condition=2")):
        assert _cli(*_gen_args(suite, out, *same)).exit_code == 0, same
    res = _cli(*_gen_args(suite, out, *cfg, "--fresh"))
    assert res.exit_code == 0, res.output
    stored = json.loads((out / "samples/cls/store.json").read_text())["fingerprint"]
    assert stored["generation"]["sampler"]["cfg_scale"] == 7.0
    records = [json.loads(x) for x in (out / "samples/cls/manifest.jsonl").read_text().splitlines()]
    assert len(records) == 15 and all(r["sampler"]["cfg_scale"] == 7.0 for r in records)
    res = _cli(*_gen_args(suite, out, "--fresh", "--shard", "0/2"))
    assert res.exit_code == 2 and "--fresh with --shard" in res.output


def test_claiming_a_store_is_race_free(tmp_path):
    """Shards starting together: one fingerprint wins, equal ones pass, another one is refused."""
    from concurrent.futures import ThreadPoolExecutor

    from diffbench.store import StoreMismatch, claim_store

    toy = {"model": {"name": "toy", "args": {}, "dtype": "fp32"}}
    dit = {"model": {"name": "dit", "args": {}, "dtype": "fp32"}}
    cases = [("same", [toy] * 8), ("mixed", [toy, dit] * 4), ("mixed", [dit, toy] * 4)]
    for i, (name, fps) in enumerate(cases * 5):  # repeated: a race shows up only sometimes
        store = tmp_path / f"{name}{i}"

        def claim(fp, store=store):
            try:
                claim_store(store, fp)
                return "ok"
            except StoreMismatch:
                return "refused"

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(claim, fps))
        winner = json.loads((store / "store.json").read_text())["fingerprint"]
        assert answers == ["ok" if fp == winner else "refused" for fp in fps]
        assert sorted(p.name for p in store.iterdir()) == ["store.json"]


def test_run_into_another_models_store_is_refused(tmp_path):
    """`run --model A --out M` then `run --model B --out M` no longer reports A's FID as B's."""
    from tests.test_run import DEMO_LIKE, write

    suite = write(tmp_path, DEMO_LIKE.replace("images_per_condition: 6", "images_per_condition: 2"))
    out = tmp_path / "M"
    res = _cli("run", suite, "--model", "toy", "--model-arg", "size=32", "--out", out,
               "--workers", "0")
    assert res.exit_code == 0, res.output
    res = _cli("run", suite, "--model", "folder", "--model-arg", f"path={tmp_path}", "--out", out)
    assert res.exit_code == 2 and 'model.name: "toy" in the store, "folder" now' in res.output
    assert results.read(out / "results/digits.json")["model"]["name"] == "toy"


def test_overwritten_checkpoint_is_refused(tmp_path):
    from diffbench.adapters.demo import DEMO_SIT

    suite = write_suite(tmp_path)
    ckpt = tmp_path / "w.safetensors"
    shutil.copy(DEMO_SIT, ckpt)
    args = ["generate", suite, "--model", "demo-sit", "--model-arg", f"ckpt={ckpt}", "--limit",
            "2", "--out", tmp_path / "M"]
    assert _cli(*args).exit_code == 0
    moved = tmp_path / "moved.safetensors"
    ckpt.rename(moved)  # same bytes elsewhere: the same model
    args[5] = f"ckpt={moved}"
    assert _cli(*args).exit_code == 0
    moved.write_bytes(b"not the same weights")
    res = _cli(*args)
    assert res.exit_code == 2 and "model.args.ckpt.sha256" in res.output


def test_store_without_fingerprint_is_refused_until_fresh(tmp_path, reference):
    suite = write_suite(tmp_path)
    out = tmp_path / "old"
    assert _cli(*_gen_args(suite, out)).exit_code == 0
    (out / "samples/cls/store.json").unlink()  # as an older diffbench left it
    res = _cli(*_gen_args(suite, out))
    assert res.exit_code == 2 and "without a record of the model" in res.output
    assert _cli(*_gen_args(suite, out, "--fresh")).exit_code == 0
    _same_store(out / "samples/cls", reference)


# -- the twice-recorded loop converges ---------------------------------------------------------


def test_following_the_merge_advice_converges(tmp_path, reference):
    suite = write_suite(tmp_path)
    out = tmp_path / "run"
    assert _cli(*_gen_args(suite, out)).exit_code == 0
    store = out / "samples/cls"
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(store / "c0002_001.png")
    res = _cli("merge", out)
    assert res.exit_code == 2 and "c0002_001" in res.output
    assert "delete them and rerun generate" in res.output
    (store / "c0002_001.png").unlink()  # as the message says
    res = _cli(*_gen_args(suite, out))
    assert res.exit_code == 0, res.output
    _same_store_but_lines(store, reference)
    lines = (store / "manifest.rank0.jsonl").read_text().splitlines()
    assert _cli(*_gen_args(suite, out)).exit_code == 0  # and nothing more is ever added
    assert (store / "manifest.rank0.jsonl").read_text().splitlines() == lines


def _same_store_but_lines(store: Path, ref: Path) -> None:
    assert png_set(store) == png_set(ref)
    assert (store / "manifest.jsonl").read_bytes() == (ref / "manifest.jsonl").read_bytes()


def test_foreign_png_over_another_parts_key_is_made_again(tmp_path, reference):
    """The old loop: a key's PNG replaced, resumed with another part count; then two records."""
    suite = write_suite(tmp_path)
    out = tmp_path / "run"
    for i in (0, 1):
        assert _cli(*_gen_args(suite, out, "--shard", f"{i}/2")).exit_code == 0
    store = out / "samples/cls"
    key = _manifest_keys(store / "manifest.rank1.jsonl")[0]
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(store / f"{key}.png")
    res = _cli(*_gen_args(suite, out))  # one process now: part 0 of 1 owns every key
    assert res.exit_code == 0, res.output
    _same_store_but_lines(store, reference)
    # a key recorded twice with two images: the record matching its PNG wins
    first = json.loads((store / "manifest.jsonl").read_text().splitlines()[0])
    (store / "manifest.rank5.jsonl").write_text(json.dumps({**first, "sha256": "0" * 64}) + "\n")
    assert _cli("merge", out).exit_code == 0
    _same_store_but_lines(store, reference)


# -- export-npz follows the manifest ---------------------------------------------------------


def test_export_npz_exports_the_manifest_only(tmp_path, reference):
    store = tmp_path / "store"
    shutil.copytree(reference, store)
    shutil.copy(store / "c0000_000.png", store / "stray.png")
    shutil.copy(store / "c0001_000.png", store / "c9999_999.png")
    res = _cli("export-npz", store, "-o", tmp_path / "s.npz")
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "s.npz", allow_pickle=False) as data:
        arr = data["arr_0"]
    keys = _manifest_keys(store / "manifest.jsonl")
    assert arr.shape == (15, 32, 32, 3) and len(keys) == 15
    for i, key in enumerate(keys):
        assert np.array_equal(arr[i], np.asarray(Image.open(store / f"{key}.png")))


def test_export_npz_refuses_an_incomplete_store_unless_allowed(tmp_path, reference):
    store = tmp_path / "store"
    shutil.copytree(reference, store)
    (store / "c0003_002.png").unlink()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(store / "c0001_001.png")
    out = tmp_path / "s.npz"
    res = _cli("export-npz", store, "-o", out)
    assert res.exit_code == 2 and "2 of 15 planned images cannot be exported" in res.output
    assert "c0001_001 (PNG differs from its sha256)" in res.output
    assert "--allow-partial" in res.output and not out.exists() and not _temps(tmp_path)
    res = _cli("export-npz", store, "-o", out, "--allow-partial")
    assert res.exit_code == 0 and "partial: 13 of 15" in res.output
    with np.load(out, allow_pickle=False) as data:
        assert data["arr_0"].shape == (13, 32, 32, 3)
    # a planned key the merged manifest does not list (merge not rerun) is missing too
    lines = (store / "manifest.jsonl").read_text().splitlines()
    (store / "manifest.jsonl").write_text("\n".join(lines[:10]) + "\n")
    res = _cli("export-npz", store, "-o", out)
    assert res.exit_code == 2 and "not in manifest.jsonl" in res.output
