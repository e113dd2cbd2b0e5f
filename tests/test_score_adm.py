"""The ADM path of `diffbench score`: reference batches read as the ADM evaluator reads them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from diffbench.cli import main
from diffbench.data.folder import FolderSource
from diffbench.data.npz import NpzSource
from diffbench.extract import extract
from diffbench.features.inception import InceptionExtractor
from diffbench.metrics import functional as F


def _images(n: int, seed: int, shift: int = 0) -> np.ndarray:
    rs = np.random.RandomState(seed)
    base = rs.randint(0, 256, (n, 8, 8, 3)) + shift
    return np.clip(np.repeat(np.repeat(base, 4, 1), 4, 2), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def adm_files(tmp_path_factory, inception_weights):
    """A reference batch (arr_0 + stats of *other* images) and a sample batch."""
    root = tmp_path_factory.mktemp("adm")
    ex = InceptionExtractor(inception_weights)
    other = root / "other.npz"
    np.savez(other, arr_0=_images(24, 7, 20))
    fs = extract(NpzSource(other), ex, ("pool3", "sfid"), (), workers=0)
    ref, sample = root / "ref.npz", root / "sample.npz"
    np.savez(ref, arr_0=_images(20, 3), mu=fs.moments["pool3"].mean(),
             sigma=fs.moments["pool3"].cov(), mu_s=fs.moments["sfid"].mean(),
             sigma_s=fs.moments["sfid"].cov())
    np.savez(sample, arr_0=_images(20, 5, 40))
    return ref, sample, ex


@pytest.mark.slow  # four 2048-d Fréchet distances: ~30 s on 2 cores
def test_adm_fid_from_stored_stats_and_pr_from_ref_images(adm_files, inception_weights, tmp_path):
    ref, sample, ex = adm_files
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, [
        "score", "--real", str(ref), "--fake", str(sample), "--protocol", "adm",
        "--metrics", "fid,sfid,prc", "--weights", f"inception-2015-12-05={inception_weights}",
        "--workers", "0", "--json", str(out)])
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())["metrics"]
    stored = np.load(ref)
    s = extract(NpzSource(sample), ex, ("pool3", "sfid"), ("pool3",), workers=0)
    r = extract(NpzSource(ref), ex, (), ("pool3",), workers=0)
    for name, layer, mu, sigma in (("fid", "pool3", "mu", "sigma"),
                                   ("sfid", "sfid", "mu_s", "sigma_s")):
        want = F.frechet_distance(stored[mu], stored[sigma], s.moments[layer].mean(),
                                  s.moments[layer].cov())
        assert m[name]["value"] == pytest.approx(want, rel=1e-6), name
    rec = json.loads(out.read_text())
    assert rec["inputs"]["real"]["stored_stats"] == ["pool3", "sfid"]
    assert rec["counts"] == {"real": 20, "fake": 20}
    p, rc = F.precision_recall(r.banks["pool3"].array(), s.banks["pool3"].array(), k=3, mode="adm")
    assert m["precision"]["value"] == pytest.approx(p) and m["recall"]["value"] == pytest.approx(rc)


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_adm_too_few_images_for_prc_is_one_line(adm_files, inception_weights, tmp_path):
    ref, _, _ = adm_files
    tiny = tmp_path / "tiny.npz"
    np.savez(tiny, arr_0=_images(3, 1))
    res = CliRunner().invoke(main, [
        "score", "--real", str(ref), "--fake", str(tiny), "--protocol", "adm", "--metrics", "prc",
        "--weights", f"inception-2015-12-05={inception_weights}", "--workers", "0"])
    assert res.exit_code == 2
    assert "k=3 needs more than 3 images" in res.output and "Traceback" not in res.output


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_folder_side_matches_npz_side(adm_files, inception_weights, tmp_path):
    """The same images as PNG files and as an npz give the same features."""
    from PIL import Image

    _, sample, ex = adm_files
    arr = np.load(sample)["arr_0"][:6]
    for i, im in enumerate(arr):
        Image.fromarray(im).save(tmp_path / f"{i}.png")
    a = extract(FolderSource(tmp_path), ex, (), ("pool3",), workers=0).banks["pool3"].array()
    np.savez(tmp_path / "six.npz", arr_0=arr)
    b = extract(NpzSource(tmp_path / "six.npz"), ex, (), ("pool3",), workers=0)
    assert np.array_equal(a, b.banks["pool3"].array())
