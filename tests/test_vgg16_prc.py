"""VGG16 fc2_relu features and torch-fidelity's precision/recall, on the same random weights file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch_fidelity
import torchvision
from click.testing import CliRunner
from torch_fidelity.feature_extractor_vgg16 import FeatureExtractorVGG16

from diffbench.cli import main
from diffbench.features.vgg16 import VGG16Extractor
from diffbench.protocols import ADM, TORCH_FIDELITY
from diffbench.resolve import resolve_task
from diffbench.scoring.distribution import passes
from tests.conftest import write_images


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory):
    """A seeded random torchvision VGG16 state dict (the real file cannot be downloaded here)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg16-random.pth"
    torch.save(torchvision.models.vgg16().state_dict(), path)
    return path


@pytest.mark.slow  # a 528 MB random VGG16 saved, loaded twice and run on 6 images
def test_features_match_torch_fidelity(vgg_weights):
    rs = np.random.RandomState(0)
    images = rs.randint(0, 256, (6, 3, 40, 56)).astype(np.uint8)
    theirs = FeatureExtractorVGG16("vgg16", ["fc2", "fc2_relu"],
                                   feature_extractor_weights_path=str(vgg_weights))
    fc2_t, relu_t = theirs(torch.from_numpy(images))
    ours = VGG16Extractor(vgg_weights)
    batch = torch.stack([ours.preprocess(im.transpose(1, 2, 0)) for im in images])
    out = ours.forward(batch)
    scale = float(fc2_t.abs().max())
    assert torch.allclose(out["fc2"], fc2_t, atol=1e-5 * scale, rtol=0)
    assert torch.allclose(out["fc2_relu"], relu_t, atol=1e-5 * scale, rtol=0)


@pytest.mark.slow
def test_torch_fidelity_protocol_prc_equals_torch_fidelity(vgg_weights, tmp_path):
    real = write_images(tmp_path / "real", 12, 0)
    fake = write_images(tmp_path / "fake", 12, 1, shift=30)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, [
        "score", "--real", str(real), "--fake", str(fake), "--protocol", "torch-fidelity",
        "--metrics", "prc", "--weights", f"vgg16-imagenet={vgg_weights}", "--workers", "0",
        "--json", str(out)])
    assert res.exit_code == 0, res.output
    record = json.loads(out.read_text())
    theirs = torch_fidelity.calculate_metrics(
        input1=str(fake), input2=str(real), prc=True, cuda=False, verbose=False,
        feature_extractor_weights_path=str(vgg_weights), save_cpu_ram=True)
    assert record["metrics"]["precision"]["value"] == pytest.approx(theirs["precision"], abs=1e-12)
    assert record["metrics"]["recall"]["value"] == pytest.approx(theirs["recall"], abs=1e-12)
    assert "vgg16-imagenet" in record["extractors"]


def test_passes_split_vgg16_precision_recall_from_inception_metrics():
    both = passes(list(resolve_task(["fid", "prc", "isc"], TORCH_FIDELITY)))
    assert [(p.extractor, p.metrics) for p in both] == [("inception", ("fid", "isc")),
                                                         ("vgg16", ("prc",))]
    assert both[1].layers == {"prc": "fc2_relu"} and both[1].resize == "tf-bilinear"
    assert [p.extractor for p in passes(list(resolve_task(["fid", "prc"], ADM)))] == ["inception"]
