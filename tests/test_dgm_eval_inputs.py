"""dgm-eval's input handling under the ``dgm-eval`` protocol: ``--clean_resize`` and at most
``max_images`` images per set drawn as dgm-eval draws them, both protocol input settings
(``--protocol-arg``) recorded in the protocol's settings, so such a record is never judged
comparable with the default protocol's.

A tiny random DINOv2 of the real architecture (tests/test_fd_dinov2.py) stands in for ViT-L/14.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from diffbench import api
from diffbench.cli import main
from diffbench.comparability import comparability
from diffbench.data.folder import FolderSource
from diffbench.data.subset import dgm_eval_draw
from diffbench.errors import ConfigError
from diffbench.features.dinov2 import DinoV2Extractor, DinoV2Preprocess
from diffbench.protocols import get_protocol
from tests._rounding import SECOND_ORDER, unit_roundoff
from tests.conftest import write_images
from tests.test_fd_dinov2 import tiny_weights  # noqa: F401  (the fixture)

_MEAN, _STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def _image(h=97, w=131, seed=0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)


def _clean_in_the_test(image: np.ndarray) -> np.ndarray:
    """Per channel: a float32 'F' PIL image, bicubic to 224, clipped to [0, 255]; then /255 and
    ImageNet mean/std in float64. 3×224×224 float64."""
    channels = [np.asarray(Image.fromarray(image[..., c].astype(np.float32), "F").resize(
        (224, 224), Image.Resampling.BICUBIC), dtype=np.float64) for c in range(3)]
    x = np.clip(np.stack(channels), 0, 255) / 255
    return (x - _MEAN[:, None, None]) / _STD[:, None, None]


def test_clean_resize_is_per_channel_float_pil_bicubic():
    """The resize is the same PIL call on the same float32 input, so its values are identical;
    the only difference is diffbench's float32 normalisation ((x/255 − m)/s) against the test's
    float64. First order, each float32 operation adds at most u = 2⁻²⁴ relative: x/255 (|x/255|
    ≤ 1), the float32 constants m and s (|m| ≤ 1, and |c| ≤ 1/s for the result c), the subtraction
    (|x/255 − m| ≤ 1) and the division (|c| ≤ 1/s): five terms of at most u/s each, so
    |ours − exact| ≤ 5u/min(s) (× SECOND_ORDER); the float64 reference's own error is ~1e-16."""
    image = _image()
    ours = DinoV2Preprocess("clean")(image).numpy()
    assert ours.dtype == np.float32 and ours.shape == (3, 224, 224)
    bound = 5 * unit_roundoff(np.float32) / _STD.min() * SECOND_ORDER + 1e-12
    assert np.abs(ours - _clean_in_the_test(image)).max() <= bound
    # the default (uint8 PIL bicubic, then rounded to uint8) is another input
    default = DinoV2Preprocess("pil")(image).numpy()
    assert np.abs(default - ours).max() > 100 * bound


def test_clean_and_default_resize_give_other_features(tiny_weights):  # noqa: F811
    images = [_image(seed=s) for s in range(3)]
    feats = {}
    for mode in ("pil", "clean"):
        ext = DinoV2Extractor(tiny_weights, resize_mode=mode)
        feats[mode] = ext.forward(torch.stack([ext.preprocess(im) for im in images]))
        assert ext.fingerprint()["resize"] == mode
    assert not torch.allclose(feats["pil"]["dinov2_cls"], feats["clean"]["dinov2_cls"])
    # at 224 neither resizes: the same input
    same = _image(224, 224)
    assert torch.equal(DinoV2Preprocess("pil")(same), DinoV2Preprocess("clean")(same))


def test_protocol_inputs_pick_the_resize_and_the_network():
    proto = get_protocol("dgm-eval")
    assert proto.inputs == {"clean_resize": False, "max_images": 50000,
                            "subsample_seed": 13579, "arch": "vitl14"}
    assert "clean_resize=False" in proto.arguments()  # `diffbench protocols` lists them
    clean = proto.with_inputs({"clean_resize": True, "arch": "vitb14"})
    assert (clean.resize, clean.extractor) == ("clean", "dinov2-vitb14")
    assert clean.param("fd_dinov2") == {"resize_mode": "clean", "arch": "vitb14"}
    assert clean.settings()["inputs"]["clean_resize"] is True
    assert proto.with_inputs({"arch": "vitl14", "clean_resize": False}).settings() == \
        proto.settings()  # the defaults given: the protocol itself
    for bad in ({"clean_resize": 1}, {"max_images": 0}, {"arch": "vith14"}, {"nsample": 5}):
        with pytest.raises(ConfigError):
            proto.with_inputs(bad)
    with pytest.raises(ConfigError, match="has no setting"):
        get_protocol("adm").with_inputs({"clean_resize": True})


def test_dgm_eval_draw_is_numpys_global_draw():
    for n, kept, seed in ((20, 7, 13579), (60000, 50000, 13579), (5, 7, 13579)):
        np.random.seed(seed)  # dgm-eval's order: seed, draw indices of the sorted files, sort
        expected = np.sort(np.random.choice(n, kept, replace=False)) if n > kept \
            else np.arange(n)
        assert np.array_equal(dgm_eval_draw(n, kept, seed), expected)


def test_score_keeps_dgm_evals_files_and_records_the_cut(tiny_weights, tmp_path):  # noqa: F811
    real = write_images(tmp_path / "real", 20, 0, size=(40, 48))
    fake = write_images(tmp_path / "fake", 20, 1, size=(40, 48), shift=30)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, [
        "score", "--real", str(real), "--fake", str(fake), "--protocol", "dgm-eval",
        "--metrics", "fd_dinov2,prdc", "--weights", f"dinov2-vitl14={tiny_weights}",
        "--protocol-arg", "max_images=7", "--protocol-arg", "clean_resize=true",
        "--workers", "0", "--batch-size", "7", "--no-cache", "--json", str(out)])
    assert res.exit_code == 0, res.output
    record = json.loads(out.read_text())
    np.random.seed(13579)
    files = sorted(real.glob("*.png"))  # dgm-eval: the sorted list, then the draw, sorted
    chosen = [files[i] for i in np.sort(np.random.choice(len(files), 7, replace=False))]
    note = record["inputs"]["real"]["subsample"]
    assert (note["from"], note["kept"], note["dropped"], note["seed"]) == (20, 7, 13, 13579)
    assert record["inputs"]["fake"]["subsample"]["dropped"] == 13
    assert record["counts"] == {"real": 7, "fake": 7}
    settings = record["protocol"]["settings"]
    assert settings["inputs"] == {"clean_resize": True, "max_images": 7,
                                  "subsample_seed": 13579, "arch": "vitl14"}
    assert settings["resize"] == "clean"
    verdict = comparability(record)
    assert not verdict.comparable and any("inputs" in r for r in verdict.reasons)
    # the scored images are those files: the same numbers from folders holding only them
    assert [FolderSource(real).paths[i] for i in dgm_eval_draw(20, 7, 13579)] == chosen
    for side in ("real", "fake"):
        for i in dgm_eval_draw(20, 7, 13579):
            (tmp_path / f"{side}7").mkdir(exist_ok=True)
            shutil.copy(tmp_path / side / f"{i:04d}.png", tmp_path / f"{side}7")
    alone = api.score(tmp_path / "real7", tmp_path / "fake7", "fd_dinov2,prdc", "dgm-eval",
                      {"dinov2-vitl14": str(tiny_weights)}, batch_size=7, workers=0,
                      cache=False, protocol_args={"clean_resize": True})
    assert "subsample" not in alone["inputs"]["real"]
    for key in ("fd_dinov2", "precision", "recall", "density", "coverage"):
        assert alone["metrics"][key]["value"] == record["metrics"][key]["value"]


def test_a_suite_task_sets_them_and_a_bad_one_is_refused():
    from diffbench.resolve import resolve_task
    from diffbench.suite import SuiteInvalid, load_suite

    key = "tasks.memorization.protocol_args"
    task = load_suite("memorization", [f"{key}.clean_resize=true"]).suite.tasks["memorization"]
    resolved = resolve_task(task.metrics, task.protocol, protocol_args=task.protocol_args)
    assert resolved.protocol.settings()["inputs"]["clean_resize"] is True
    assert {m.feature()[1] for m in resolved} == {"clean"}
    with pytest.raises(SuiteInvalid, match="has no setting 'nsample'"):
        load_suite("memorization", [f"{key}.nsample=5"])


def test_preflight_counts_the_images_that_will_be_scored(tmp_path):
    real = write_images(tmp_path / "real", 20, 0, size=(16, 16))
    fake = write_images(tmp_path / "fake", 20, 1, size=(16, 16))
    with pytest.raises(ConfigError, match="there are 5 reference and 5 generated images"):
        api.score(real, fake, "prdc", "dgm-eval", protocol_args={"max_images": 5})
