"""`diffbench run suites/dreambooth.yaml` end to end (folder adapter, random CLIP/DINO weights).

A sweep of two points over a sampler parameter: every point's DINO, CLIP-I and CLIP-T equal the
direct open_clip/timm computation to 1e-6, and the records carry the subject/prompt-fidelity front.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from diffbench.cli import main
from diffbench.data.dreambooth import DreamBoothDataset
from diffbench.data.samples import SampleSet
from diffbench.requests import task_requests
from diffbench.results import read
from diffbench.suite import default_suites_dir, load_suite
from tests._dreambooth import direct, expected, weights, write_dataset, write_generated
from tests._faults import torchrun

pytestmark = pytest.mark.slow
SUITE = default_suites_dir() / "dreambooth.yaml"
SETS = ["tasks.dreambench.generation.images_per_condition=2",
        "tasks.dreambench.dataset.args.prompts=[2]"]


def test_run_suite_with_sweep_matches_direct_computation(tmp_path):
    root = write_dataset(tmp_path / "dataset")
    task = load_suite(SUITE, SETS).suite.tasks["dreambench"]
    ds = DreamBoothDataset(root, **task.dataset.args)
    made = write_generated(tmp_path / "made", [r.key for r in task_requests(task, items=ds.items())])
    args = ["run", str(SUITE), "--model", "folder", "--model-arg", f"path={made}",
            "--data", f"dreambooth={root}", "--out", str(tmp_path / "run"),
            "--sweep", "guidance_scale=5,7.5", "--workers", "1", "--score-batch-size", "4",
            "--metric-arg", "dino.scale=10"]  # an argument both records carry
    for name, path in weights().items():
        args += ["--weights", f"{name}={path}"]
    for s in SETS:
        args += ["--set", s]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    refs = {s: ds.reference_paths(s) for s in ds.subjects}
    records = sorted((tmp_path / "run" / "results").glob("dreambench@*.json"))
    assert [p.stem for p in records] == ["dreambench@guidance_scale=5",
                                         "dreambench@guidance_scale=7.5"]
    for path in records:
        record = read(path)
        want = expected(SampleSet(tmp_path / "run" / "samples" / path.stem), refs)
        for metric in ("dino", "clip_i", "clip_t"):
            entry = record["metrics"][metric]
            assert abs(entry["value"] - want[metric]["value"]) < 1e-6, (path.stem, metric)
            assert entry["n"]["generated"] == 4 and entry["protocol"] == "dreambench"
        assert record["pareto"] is not None
        assert "clip_t" in json.dumps(record["pareto"]) and "dino" in json.dumps(record["pareto"])
    oracle = read(tmp_path / "run" / "results" / "dreambench.oracle.json")
    assert set(oracle["metrics"]) == {"dino", "clip_i"}  # CLIP-T has no prompt for real images
    assert oracle["protocol"] == read(records[0])["protocol"]  # one resolution for both records
    assert oracle["protocol"]["settings"]["params"]["dino"]["scale"] == 10
    emb = direct().image
    for metric, net in (("dino", "dino"), ("clip_i", "clip")):
        want = np.mean([np.mean([emb(a)[net] @ emb(b)[net] for a in paths for b in paths if a != b])
                        for paths in refs.values()])
        assert abs(oracle["metrics"][metric]["value"] - want) < 1e-6, metric


def test_missing_weights_name_the_fix(tmp_path):
    root = write_dataset(tmp_path / "dataset", {"dog": ("dog", 2)})
    task = load_suite(SUITE, SETS).suite.tasks["dreambench"]
    ds = DreamBoothDataset(root, **task.dataset.args)
    made = write_generated(tmp_path / "made", [r.key for r in task_requests(task, items=ds.items())])
    args = ["run", str(SUITE), "--model", "folder", "--model-arg", f"path={made}",
            "--data", f"dreambooth={root}", "--out", str(tmp_path / "run")]
    for s in SETS:
        args += ["--set", s]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2
    assert "diffbench weights fetch dino-vits16" in res.output
    assert "Traceback" not in res.output


def _torchrun(args: list[str], ranks: int) -> None:
    cmd = [sys.executable, "-m", "diffbench", "-q", *args]
    if ranks > 1:
        cmd = torchrun(ranks, "-m", "diffbench", "-q", *args)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DIFFBENCH_NO_PROGRESS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.procs
def test_two_ranks_give_bit_identical_scores(tmp_path):
    """Under torchrun each rank embeds whole global batches; gathered values equal one process.

    Small networks of the same families (timm ViT-Ti/16, open_clip ViT-S-32) keep it quick: the
    metric arguments replace the protocol's architectures and weights names.
    """
    from tests._dreambooth import make_clip_weights, make_timm_weights

    root = write_dataset(tmp_path / "dataset")
    task = load_suite(SUITE, SETS).suite.tasks["dreambench"]
    ds = DreamBoothDataset(root, **task.dataset.args)
    made = write_generated(tmp_path / "made", [r.key for r in task_requests(task, items=ds.items())])
    clip = make_clip_weights(tmp_path / "s32.safetensors", "ViT-S-32")
    dino = make_timm_weights(tmp_path / "ti.pth", "vit_tiny_patch16_224")
    small = "{model: ViT-S-32, weights: clip-s32}"
    args = [str(SUITE), "--model", "folder", "--model-arg", f"path={made}", "--data",
            f"dreambooth={root}", "--weights", f"clip-s32={clip}", "--weights", f"dino-ti={dino}",
            "--score-batch-size", "3", "--workers", "0", "--set",
            "tasks.dreambench.metrics={dino: {args: {arch: vit_tiny_patch16_224, weights: "
            f"dino-ti}}}}, clip_i: {{args: {small}}}, clip_t: {{args: {small}}}}}"]
    for s in SETS:
        args += ["--set", s]
    _torchrun(["run", *args, "--out", str(tmp_path / "one")], 1)
    _torchrun(["run", *args, "--out", str(tmp_path / "two")], 2)
    for name in ("dreambench.json", "dreambench.oracle.json"):
        one = read(tmp_path / "one" / "results" / name)
        two = read(tmp_path / "two" / "results" / name)
        assert two["environment"]["world_size"] == 2
        for metric, entry in one["metrics"].items():
            assert two["metrics"][metric]["value"] == entry["value"], (name, metric)
            assert two["metrics"][metric]["details"] == entry["details"], (name, metric)
