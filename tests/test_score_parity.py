"""`diffbench score` against torch-fidelity and clean-fid on the same images and weights file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch_fidelity
from click.testing import CliRunner

from diffbench.cli import main
from diffbench.data.folder import FolderSource
from diffbench.extract import extract
from diffbench.features.inception import InceptionExtractor
from diffbench.metrics import functional as F


def run_score(real, fake, weights, out, *args):
    given = ["--weights", f"inception-2015-12-05={weights}"] if weights else []
    res = CliRunner().invoke(main, ["score", "--real", str(real), "--fake", str(fake), *given,
                                    "--json", str(out), "--workers", "0", *args])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


@pytest.mark.slow
def test_torch_fidelity_protocol_matches_torch_fidelity(image_sets, inception_weights, tmp_path):
    real, fake = image_sets
    rec = run_score(real, fake, inception_weights, tmp_path / "r.json", "--protocol",
                    "torch-fidelity", "--metrics", "fid,kid,isc", "--kid-subset-size", "50",
                    "--no-cache")
    ref = torch_fidelity.calculate_metrics(
        input1=str(fake), input2=str(real), isc=True, fid=True, kid=True, kid_subset_size=50,
        feature_extractor_weights_path=str(inception_weights), cache=False, verbose=False,
        cuda=False, save_cpu_ram=True)
    m = rec["metrics"]
    assert m["fid"]["value"] == pytest.approx(ref["frechet_inception_distance"], rel=1e-4)
    assert m["isc"]["value"] == pytest.approx(ref["inception_score_mean"], rel=1e-4)
    assert m["isc"]["std"] == pytest.approx(ref["inception_score_std"], rel=1e-3)
    assert m["kid"]["value"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-3)
    assert m["kid"]["std"] == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-3)
    assert rec["counts"] == {"real": 60, "fake": 60}
    assert rec["protocol"]["name"] == "torch-fidelity"
    assert rec["extractors"]["inception-2015-12-05"]["resize"] == "tf-bilinear"


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_features_match_torch_fidelity_extractor(image_sets, inception_weights):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    real, _ = image_sets
    src = FolderSource(real)
    theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                         feature_extractor_weights_path=str(inception_weights))
    images = np.stack([src[i] for i in range(8)])
    ref = theirs(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
    for exact, tol in ((True, 0.0), (False, 2e-4)):  # fast path measured: ≤ 7e-5
        ours = InceptionExtractor(inception_weights, exact=exact)
        a = ours.forward(torch.stack([ours.preprocess(im) for im in images]))
        for name, r in zip(("pool3", "logits_unbiased"), ref, strict=True):
            rel = ((a[name] - r).abs().max() / r.abs().max()).item()
            assert rel <= tol, (exact, name, rel)


def test_clean_protocol_uses_cleanfid_resize(image_sets, inception_weights):
    from cleanfid.resize import make_resizer

    real, _ = image_sets
    ex = InceptionExtractor(inception_weights, resize="clean")
    for i in (0, 1):
        image = FolderSource(real)[i]
        resized = make_resizer("PIL", False, "bicubic", (299, 299))(image)
        assert np.array_equal(ex.preprocess(image).permute(1, 2, 0).numpy(), resized)


@pytest.mark.slow  # clean-fid's scipy sqrtm of a 2048×2048 product (~77 CPU-s)
def test_clean_protocol_fid_equals_cleanfid_frechet_distance(image_sets, inception_weights):
    """The Fréchet formula's parity with clean-fid's at 2048 dims, rank-deficient (60 images);
    tests/test_vton_reals.py relies on it (it runs clean-fid's pipeline with diffbench's formula)."""
    from cleanfid.fid import frechet_distance as clean_fd

    real, fake = image_sets
    ex = InceptionExtractor(inception_weights, resize="clean")
    r = extract(FolderSource(real), ex, ("pool3",), ("pool3",), workers=0)
    f = extract(FolderSource(fake), ex, ("pool3",), ("pool3",), workers=0)
    ours = F.frechet_distance(r.moments["pool3"].mean(), r.moments["pool3"].cov(),
                              f.moments["pool3"].mean(), f.moments["pool3"].cov())
    rows_r, rows_f = r.banks["pool3"].array(), f.banks["pool3"].array()
    theirs = clean_fd(rows_r.astype(np.float64).mean(0), np.cov(rows_r, rowvar=False),
                      rows_f.astype(np.float64).mean(0), np.cov(rows_f, rowvar=False))
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_bootstrap_ci_recorded(image_sets, tmp_path):
    """The recording, not the network, is under test: the small demo-digits protocol's."""
    real, fake = image_sets
    args = ("--protocol", "demo-digits", "--bootstrap", "20")
    rec = run_score(real, fake, None, tmp_path / "r.json", "--metrics", "fid,isc", *args)
    for name in ("fid", "isc"):
        ci = rec["metrics"][name]["ci"]
        assert ci["low"] <= ci["high"] and ci["n"] == 20
    again = run_score(real, fake, None, tmp_path / "r2.json", "--metrics", "fid", *args)
    assert again["metrics"]["fid"]["ci"] == rec["metrics"]["fid"]["ci"]  # seeded
