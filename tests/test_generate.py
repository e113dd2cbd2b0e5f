"""Generation loop: per-sample seeds, resume, repair, shards, folder adapter, CLI checks, npz."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from diffbench import dist
from diffbench.adapters.folder import FolderAdapter
from diffbench.adapters.toy import ToyAdapter
from diffbench.cli import main
from diffbench.data.samples import read_manifest
from diffbench.errors import ConfigError, DataError
from diffbench.export import export_npz
from diffbench.generate import generate, merge_manifests
from diffbench.requests import task_requests
from diffbench.suite import TaskSpec

SUITE = """\
name: toy
version: 1
tasks:
  cls:
    kind: generate
    condition: {condition}
    generation:
      images_per_condition: 3
      seed: 7
      sampler: {{num_classes: 5, steps: 10}}
    protocol: adm
    metrics: {{fid: {{}}}}
"""


def write_suite(tmp: Path, condition: str = "class") -> Path:
    """A small suite file: 5 classes x 3 images."""
    path = tmp / f"suite_{condition}.yaml"
    path.write_text(SUITE.format(condition=condition))
    return path


def class_task(**gen) -> TaskSpec:
    """A class-conditional task with 5 classes."""
    generation = {"images_per_condition": 3, "seed": 7, "sampler": {"num_classes": 5}, **gen}
    return TaskSpec.model_validate({"condition": "class", "generation": generation,
                                    "protocol": "adm", "metrics": {"fid": {}}})


def png_set(folder: Path) -> dict[str, bytes]:
    """Name -> bytes of every PNG in a folder."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_requests_balanced_keys_and_seeds():
    reqs = task_requests(class_task())
    assert len(reqs) == 15 and [r.key for r in reqs] == sorted(r.key for r in reqs)
    assert reqs[0].key == "c0000_000" and reqs[0].condition == {"class": 0}
    labels = [r.condition["class"] for r in reqs]
    assert all(labels.count(c) == 3 for c in range(5))
    assert len({r.seed for r in reqs}) == 15
    assert [r.seed for r in task_requests(class_task())] == [r.seed for r in reqs]
    assert "num_classes" not in reqs[0].sampler
    other = task_requests(class_task(seed=8))
    assert [r.seed for r in other] != [r.seed for r in reqs]
    # truncation keeps classes balanced: image 0 of every class before image 1
    cut = task_requests(class_task(num_images=7))
    assert sorted(r.condition["class"] for r in cut) == [0, 0, 1, 1, 2, 3, 4]


def test_requests_uniform_labels_and_none():
    reqs = task_requests(class_task(num_images=40, sampler={"num_classes": 5, "labels": "uniform"}))
    assert len(reqs) == 40 and reqs[0].key == "000000"
    assert len({r.condition["class"] for r in reqs}) > 1
    none = task_requests(TaskSpec.model_validate(
        {"condition": "none", "generation": {"num_images": 4}, "protocol": "adm",
         "metrics": {"fid": {}}}))
    assert [r.key for r in none] == ["000000", "000001", "000002", "000003"]
    prompt = TaskSpec.model_validate({"condition": "prompt", "protocol": "adm",
                                      "metrics": {"fid": {}}})
    with pytest.raises(ConfigError):
        task_requests(prompt)


def test_batch_size_does_not_change_images(tmp_path):
    reqs = task_requests(class_task())
    r1 = generate(ToyAdapter(), reqs, tmp_path / "b1", batch_size=1, progress=False)
    r7 = generate(ToyAdapter(), reqs, tmp_path / "b7", batch_size=7, progress=False)
    assert r1.made_now == r7.made_now == 15
    assert png_set(tmp_path / "b1") == png_set(tmp_path / "b7")
    assert len(set(png_set(tmp_path / "b1").values())) == 15


def test_resume_after_deleting_pngs(tmp_path):
    reqs = task_requests(class_task())
    out = tmp_path / "run"
    generate(ToyAdapter(), reqs, out, batch_size=4, progress=False)
    before = png_set(out)
    for name in list(before)[::3]:
        (out / name).unlink()
    rep = generate(ToyAdapter(), reqs, out, batch_size=4, progress=False)
    assert rep.made_now == 5 and rep.skipped == 10
    assert png_set(out) == before
    records = merge_manifests(out)
    assert sorted(r["key"] for r in records) == sorted(r.key for r in reqs)
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(x)["key"] for x in lines}) == 15


def test_repair_truncated_line_missing_line_and_temp_files(tmp_path):
    reqs = task_requests(class_task())
    out = tmp_path / "run"
    generate(ToyAdapter(), reqs, out, batch_size=4, limit=8, progress=False)
    manifest = out / "manifest.rank0.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    # last line cut in half, one line lost entirely, a leftover temp file
    manifest.write_bytes(b"".join(lines[:5]) + b"".join(lines[6:7]) + lines[7][:20])
    (out / ".c0004_002.png.tmp.p0.4242-0a1b2c3d").write_bytes(b"junk")  # a dead writer's
    assert len(read_manifest(manifest)) == 6
    rep = generate(ToyAdapter(), reqs, out, batch_size=4, limit=8, progress=False)
    assert rep.made_now == 0 and rep.repaired == 2 and rep.smoke
    assert not list(out.glob(".*tmp*"))
    assert len(read_manifest(manifest)) == 8
    assert len(merge_manifests(out)) == 8


def test_merge_refuses_bad_hash_and_missing(tmp_path):
    reqs = task_requests(class_task())
    out = tmp_path / "run"
    generate(ToyAdapter(), reqs, out, batch_size=8, shard=(0, 2), progress=False)
    with pytest.raises(DataError, match="missing"):
        merge_manifests(out)
    generate(ToyAdapter(), reqs, out, batch_size=8, shard=(1, 2), progress=False)
    assert len(merge_manifests(out)) == 15
    first = sorted(out.glob("*.png"))[0]
    Image.new("RGB", (32, 32)).save(first)
    with pytest.raises(DataError, match="sha256"):
        merge_manifests(out)


def test_single_process_and_shard_parse():
    assert dist.rank() == 0 and dist.world_size() == 1 and dist.is_main()
    assert dist.parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/"):
        with pytest.raises(ConfigError):
            dist.parse_shard(bad)


def test_cli_shards_then_merge_equal_single_run(tmp_path):
    suite = write_suite(tmp_path)
    runner = CliRunner()
    base = ["generate", str(suite), "--model", "toy", "--batch-size", "4"]
    res = runner.invoke(main, [*base, "--out", str(tmp_path / "one")])
    assert res.exit_code == 0, res.output
    assert "images/s" in res.output
    for i in (0, 1):
        res = runner.invoke(main, [*base, "--out", str(tmp_path / "sh"), "--shard", f"{i}/2"])
        assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["merge", str(tmp_path / "sh")])
    assert res.exit_code == 0, res.output
    one, sh = tmp_path / "one/samples/cls", tmp_path / "sh/samples/cls"
    assert png_set(one) == png_set(sh) and len(png_set(one)) == 15
    assert (one / "manifest.jsonl").read_bytes() == (sh / "manifest.jsonl").read_bytes()


def test_cli_merge_missing_shard_exit_2(tmp_path):
    suite = write_suite(tmp_path)
    res = CliRunner().invoke(main, ["generate", str(suite), "--model", "toy", "--out",
                                    str(tmp_path / "sh"), "--shard", "0/3"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["merge", str(tmp_path / "sh")])
    assert res.exit_code == 2 and "planned images missing" in res.output


def test_cli_adapter_mismatch_exits_before_writing(tmp_path):
    suite = write_suite(tmp_path, condition="prompt")
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["generate", str(suite), "--model", "toy", "--out", str(out)])
    assert res.exit_code == 2
    assert "condition 'prompt' is not accepted" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not out.exists()
    res = CliRunner().invoke(main, ["generate", str(write_suite(tmp_path)), "--model", "toy",
                                    "--model-arg", "nope=1", "--out", str(out)])
    assert res.exit_code == 2 and not out.exists()


def test_folder_adapter_matches_by_key(tmp_path):
    suite = write_suite(tmp_path)
    runner = CliRunner()
    res = runner.invoke(main, ["generate", str(suite), "--model", "toy", "--out",
                               str(tmp_path / "toy")])
    assert res.exit_code == 0, res.output
    src = tmp_path / "elsewhere"
    src.mkdir()
    for p in (tmp_path / "toy/samples/cls").glob("*.png"):
        (src / p.name).write_bytes(p.read_bytes())
    (src / "extra.png").write_bytes(p.read_bytes())
    res = runner.invoke(main, ["generate", str(suite), "--model", "folder", "--model-arg",
                               f"path={src}", "--out", str(tmp_path / "fold")])
    assert res.exit_code == 0, res.output
    assert png_set(tmp_path / "toy/samples/cls") == png_set(tmp_path / "fold/samples/cls")
    for name in ("c0001_000.png", "c0002_001.png"):
        (src / name).unlink()
    res = runner.invoke(main, ["generate", str(suite), "--model", "folder", "--model-arg",
                               f"path={src}", "--out", str(tmp_path / "fold2")])
    assert res.exit_code == 2
    assert "2 of 15 images missing" in res.output and "c0001_000" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "fold2").exists()
    with pytest.raises(DataError):
        FolderAdapter(path=str(tmp_path / "absent"))


def test_export_npz_roundtrip(tmp_path):
    reqs = task_requests(class_task())
    out = tmp_path / "run"
    generate(ToyAdapter(size=24), reqs, out, batch_size=5, progress=False)
    merge_manifests(out)
    res = CliRunner().invoke(main, ["export-npz", str(out), "-o", str(tmp_path / "s.npz")])
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "s.npz", allow_pickle=False) as data:
        arr = data["arr_0"]
    assert arr.shape == (15, 24, 24, 3) and arr.dtype == np.uint8
    for i, req in enumerate(reqs):
        assert np.array_equal(arr[i], np.asarray(Image.open(out / f"{req.key}.png")))


def test_export_npz_refuses_mixed_sizes_and_a_folder_without_manifest(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    with pytest.raises(DataError, match="no manifest.jsonl"):
        export_npz(folder, tmp_path / "x.npz")
    Image.new("RGB", (9, 8)).save(folder / "b.png")
    lines = [json.dumps({"key": k, "sha256": hashlib.sha256((folder / f"{k}.png").read_bytes())
                         .hexdigest()}) for k in ("a", "b")]
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="differs"):
        export_npz(folder, tmp_path / "x.npz")
    assert not list(tmp_path.glob("*.npz")) and not list(tmp_path.glob(".x.npz*"))


def test_folder_stem_keys_sharing_a_tryon_id_are_not_ambiguous(tmp_path):
    """DreamBench-style keys (<subject>-p02-0) share the try-on id '02-0.png'; stem wins."""
    from diffbench.adapters.base import Request

    img = np.zeros((4, 4, 3), np.uint8)
    for name in ("can-p02-0", "dog-p02-0"):
        Image.fromarray(img).save(tmp_path / f"{name}.png")
    ad = FolderAdapter(str(tmp_path))
    ad.check_keys(["can-p02-0", "dog-p02-0"])
    assert len(ad.generate([Request("dog-p02-0", 0)])) == 1
    # a try-on request whose id two files share is an error naming both files
    with pytest.raises(DataError, match="can-p02-0.png, dog-p02-0.png .*'02-0.png'"):
        ad.find(Request("x02-0.png", 0, {"person": "p", "garment": "g"}))
