"""`diffbench run suites/dreambooth.yaml` end to end (folder adapter, random CLIP/DINO weights).

A sweep of two points over a sampler parameter: every point's DINO, CLIP-I and CLIP-T equal the
direct open_clip/timm computation to 1e-6, and the records carry the subject/prompt-fidelity front.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from diffbench.cli import main
from diffbench.data.dreambooth import DreamBoothDataset
from diffbench.data.samples import SampleSet
from diffbench.requests import task_requests
from diffbench.results import read
from diffbench.suite import default_suites_dir, load_suite
from tests._dreambooth import expected, weights, write_dataset, write_generated

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
            "--sweep", "guidance_scale=5,7.5", "--workers", "1", "--score-batch-size", "4"]
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
