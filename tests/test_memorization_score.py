"""The memorization metrics end to end: ``diffbench score --train`` and ``diffbench run
memorization`` on a case where a third of the generated images are copies of training images.

A tiny random DINOv2 of the real architecture (tests/test_fd_dinov2.py) stands in for ViT-L/14.
The record's values are the metric functions' on the scorer's own float32 rows; the copies are
found as the closest generated images, named beside their training images, and move authpct,
ct and fls_overfit the way copying does against a case without copies.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from diffbench.cli import main
from diffbench.features.dinov2 import DinoV2Extractor
from diffbench.metrics import dgm, memorization
from diffbench.suite import default_suites_dir
from tests.conftest import write_images
from tests.test_fd_dinov2 import tiny_weights  # noqa: F401  (the fixture)

N_TRAIN, N_TEST, N_FAKE, N_COPIES = 45, 45, 75, 25  # C_T counts cells of > 20 generated
SIZE = (32, 32)


def _sets(root: Path, copies: int) -> dict[str, Path]:
    """Training, held-out and generated folders; the last `copies` generated images are
    copies of training images 0, 1, 2, … (generated keys 000000…, as the folder adapter
    serves them)."""
    train = write_images(root / "train", N_TRAIN, 0, SIZE)
    test = write_images(root / "test", N_TEST, 1, SIZE)
    fresh = write_images(root / "fresh", N_FAKE, 2, SIZE)
    gen = root / "gen"
    gen.mkdir()
    for i in range(N_FAKE):
        j = i - (N_FAKE - copies)
        src = train / f"{j:04d}.png" if j >= 0 else fresh / f"{i:04d}.png"
        shutil.copyfile(src, gen / f"{i:06d}.png")
    return {"train": train, "test": test, "gen": gen}


def _rows(ext: DinoV2Extractor, folder: Path) -> np.ndarray:
    ims = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]
    return ext.forward(torch.stack([ext.preprocess(im) for im in ims]))["dinov2_cls"].numpy()


def test_score_with_train_equals_the_functions_and_names_the_copies(tiny_weights, tmp_path):  # noqa: F811
    s = _sets(tmp_path, N_COPIES)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, [
        "score", "--real", str(s["test"]), "--fake", str(s["gen"]), "--train", str(s["train"]),
        "--protocol", "dgm-eval", "--metrics", "ct,ct_test,ct_modified,fls,fls_overfit",
        "--weights", f"dinov2-vitl14={tiny_weights}", "--workers", "0", "--batch-size", "45",
        "--json", str(out)])
    assert res.exit_code == 0, res.output
    rec = json.loads(out.read_text())
    m = rec["metrics"]
    ext = DinoV2Extractor(tiny_weights, resize_mode="pil")
    t, p, q = (_rows(ext, s[k]) for k in ("train", "test", "gen"))  # one batch each, as scored
    assert m["ct"]["value"] == memorization.ct(t, p, q, seed=13579)
    assert m["ct_test"]["value"] == memorization.ct_test(t, p, q, seed=13579)
    assert m["ct_modified"]["value"] == memorization.ct_modified(t, p, q, seed=13579)
    want = memorization.fls(t, p, q, seed=13579)
    assert (m["fls"]["value"], m["fls_overfit"]["value"]) == (want["fls"], want["fls_overfit"])
    assert m["ct"]["n"] == {"train": N_TRAIN, "real": N_TEST, "fake": N_FAKE}
    assert rec["inputs"]["train"]["path"] == str(s["train"])
    # the copies are the closest generated images, each named beside its training image
    closest = m["ct"]["details"]["closest"]
    assert len(closest) == 16
    dist, _ = dgm.nearest(q, t)
    assert [c["distance"] for c in closest] == sorted(dist)[:16]
    # identical images give rows equal up to float32 rounding of the batch they sit in
    assert all(c["distance"] <= 1e-4 * np.linalg.norm(t, axis=1).max() for c in closest)
    assert {c["fake_key"]: c["train_key"] for c in closest}.items() <= {
        f"{i:06d}": f"{i - N_FAKE + N_COPIES:04d}" for i in range(N_FAKE - N_COPIES, N_FAKE)}.items()
    assert all(Path(c["train_path"]).parent == s["train"] for c in closest)


@pytest.mark.parametrize("args,message", [
    (["--metrics", "ct"], "--metrics: ct needs the model's training images; pass --train DIR"),
    (["--metrics", "authpct", "--train", "TRAIN"], "--train/--test are read only by the metrics that need the training set (ct, ct_test, "
     "ct_modified, fls, fls_overfit)"),
])
def test_train_is_checked_before_the_work(tmp_path, args, message):
    real = write_images(tmp_path / "real", 4, 0, SIZE)
    args = [str(real) if a == "TRAIN" else a for a in args]
    res = CliRunner().invoke(main, ["score", "--real", str(real), "--fake", str(real),
                                    "--protocol", "dgm-eval", *args])
    assert res.exit_code == 2 and message in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output


def _run(root: Path, weights: Path, copies: int, *extra: str) -> tuple[dict, str]:
    s = _sets(root, copies)
    out = root / "run"
    res = CliRunner().invoke(main, [
        "run", "memorization", "--model", "folder", "--model-arg", f"path={s['gen']}",
        "--data", f"memorization-train={s['train']}", "--data", f"memorization-test={s['test']}",
        "--set", f"tasks.memorization.generation.num_images={N_FAKE}",
        "--weights", f"dinov2-vitl14={weights}", "--workers", "0", "--batch-size", "45",
        "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "results" / "memorization.json").read_text())
    res = CliRunner().invoke(main, ["report", str(out), "-o", str(root / "report")])
    assert res.exit_code == 0, res.output
    return rec["metrics"], (root / "report" / "index.html").read_text()


def test_memorization_suite_sees_copies(tiny_weights, tmp_path):  # noqa: F811
    suite = (default_suites_dir() / "memorization.yaml").read_text()
    assert "metrics: {fd_dinov2: {}, prdc: {}, authpct: {}, ct: {}, fls_overfit: {}, vendi: {}}" \
        in suite
    clean, clean_html = _run(tmp_path / "clean", tiny_weights, 0)
    copied, html = _run(tmp_path / "copied", tiny_weights, N_COPIES)
    assert copied["authpct"]["value"] < clean["authpct"]["value"]  # copies are not authentic
    assert copied["ct"]["value"] < clean["ct"]["value"]  # closer to the training set
    assert copied["fls_overfit"]["value"] > clean["fls_overfit"]["value"]
    for key in ("fd_dinov2", "precision", "recall", "density", "coverage", "vendi"):
        assert np.isfinite(copied[key]["value"]), key
    # the gallery shows each copy beside its training image, nearest first
    assert "Memorization" in html and "Memorization" in clean_html  # the nearest, even unlike
    gallery = html[html.index("Memorization"):]
    assert gallery.count("data:image") == 2 * 16 and "missing" not in gallery
    closest = copied["ct"]["details"]["closest"]
    assert len(closest) == 16
    for c in closest:  # each a copy, shown with its training image
        assert int(c["fake_key"]) - N_FAKE + N_COPIES == int(c["train_key"]), c
        assert f"{c['fake_key']}" in gallery and f"{c['train_key']}" in gallery


_FOLDER = "{name: t, reader: folder}"


@pytest.mark.parametrize("metrics,reference,message", [
    ("ct", f"{{dataset: {_FOLDER}}}", "tasks.m.metrics: ct needs the model's training images"),
    ("ct", f"{{dataset: {_FOLDER}, train: {_FOLDER}}}", None),
    ("authpct", f"{{dataset: {_FOLDER}, test: {_FOLDER}}}",
     "tasks.m.reference: train/test are read only by the metrics that need the training set"),
])
def test_suite_train_is_checked_by_validate(tmp_path, metrics, reference, message):
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: s\nversion: 1\ntasks:\n  m:\n    kind: score\n    dataset: "
                     f"{{name: g, reader: folder}}\n    protocol: dgm-eval\n    metrics: "
                     f"{{{metrics}: {{}}}}\n    reference: {reference}\n")
    res = CliRunner().invoke(main, ["suites", "validate", str(suite)])
    if message is None:
        assert res.exit_code == 0, res.output
        return
    assert res.exit_code == 2 and message in res.output, res.output
    assert "Traceback" not in res.output


def test_run_protocol_arg_reaches_every_task_whose_protocol_has_it(tiny_weights, tmp_path):  # noqa: F811
    """`run --protocol-arg clean_resize=true` is `--set tasks.T.protocol_args.clean_resize=true`
    for each task whose protocol has the setting: recorded, and the numbers move."""
    plain, _ = _run(tmp_path / "plain", tiny_weights, 0)
    clean, _ = _run(tmp_path / "clean", tiny_weights, 0, "--protocol-arg", "clean_resize=true")
    rec = json.loads((tmp_path / "clean" / "run" / "results" / "memorization.json").read_text())
    assert rec["protocol"]["settings"]["inputs"]["clean_resize"] is True
    assert rec["protocol"]["settings"]["resize"] == "clean"
    assert clean["fd_dinov2"]["value"] != plain["fd_dinov2"]["value"]  # 32 px images upsized
