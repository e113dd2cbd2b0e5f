"""The shipped ImageNet 256 suite, smoke-run with the toy model against a synthetic ADM batch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from diffbench import results
from diffbench.cli import main
from diffbench.data.npz import NpzSource
from diffbench.extract import extract
from diffbench.features.inception import InceptionExtractor
from diffbench.suite import default_suites_dir
from tests.test_fd_dinov2 import TINY, _random_state


@pytest.mark.slow  # Inception at 299 px on ~50 images and three 2048-d Fréchet distances
def test_imagenet_suite_smoke_run_equals_adm_score(tmp_path, inception_weights):
    rs = np.random.RandomState(0)
    imgs = np.repeat(np.repeat(rs.randint(0, 256, (16, 8, 8, 3)), 8, 1), 8, 2).astype(np.uint8)
    other = tmp_path / "other.npz"
    np.savez(other, arr_0=imgs[::-1].copy())
    fs = extract(NpzSource(other), InceptionExtractor(inception_weights), ("pool3", "sfid"), (),
                 workers=0)
    ref = tmp_path / "VIRTUAL_imagenet256_labeled.npz"
    np.savez(ref, arr_0=imgs, mu=fs.moments["pool3"].mean(), sigma=fs.moments["pool3"].cov(),
             mu_s=fs.moments["sfid"].mean(), sigma_s=fs.moments["sfid"].cov())
    weights = f"inception-2015-12-05={inception_weights}"
    dinov2 = tmp_path / "dinov2-tiny-random.pth"  # the real architecture class, tiny width
    torch.save(_random_state(TINY), dinov2)
    runner = CliRunner()
    res = runner.invoke(main, [
        "run", str(default_suites_dir() / "imagenet256.yaml"), "--task", "repa-sde-cfg",
        "--model", "toy", "--model-arg", "size=64", "--limit", "12", "--workers", "0",
        "--data", f"imagenet256-ref={ref}", "--weights", weights,
        "--weights", f"dinov2-vitl14={dinov2}", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    rec = results.read(tmp_path / "r" / "results" / "repa-sde-cfg.json")
    assert rec["smoke"] is True and rec["protocol"]["name"] == "adm"
    assert set(rec["metrics"]) == {"fid", "sfid", "isc", "precision", "recall", "fd_dinov2"}
    # FD_DINOv2 under its own protocol (edm2), on the DINOv2 features of the batch's images;
    # the record carries edm2's settings so that metric is judged on its own.
    assert rec["metrics"]["fd_dinov2"]["protocol"] == "edm2"
    assert rec["metrics"]["fid"]["protocol"] == "adm"
    assert rec["protocol"]["others"]["edm2"]["extractor"] == "inception"
    assert rec["references"]["real@edm2"]["n"] == 16  # the batch's 16 images, through DINOv2
    assert rec["sampler"] == {"mode": "sde", "steps": 250, "cfg_scale": 1.8,
                              "guidance_interval": [0.0, 0.7]}
    assert rec["references"]["real"]["stored_stats"] == ["pool3", "sfid"]
    # The same images exported for the ADM evaluator score the same through `diffbench score`.
    npz = tmp_path / "samples.npz"
    res = runner.invoke(main, ["export-npz", str(tmp_path / "r/samples/repa-sde-cfg"), "-o",
                               str(npz)])
    assert res.exit_code == 0, res.output
    out = tmp_path / "score.json"
    res = runner.invoke(main, ["score", "--real", str(ref), "--fake", str(npz), "--protocol",
                               "adm", "--metrics", "fid,sfid,prc", "--weights", weights,
                               "--workers", "0", "--json", str(out)])
    assert res.exit_code == 0, res.output
    direct = json.loads(out.read_text())["metrics"]
    for name in ("fid", "sfid", "precision", "recall"):
        assert rec["metrics"][name]["value"] == pytest.approx(direct[name]["value"], rel=1e-9)
