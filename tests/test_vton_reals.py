"""FID/KID real sets of the try-on protocols against the scripts that define them.

CatVTON's eval.py (`catvton`): when the predictions are smaller than the ground truth it scores
clean-fid's ``compute_fid(gt, pred)`` / ``compute_kid(gt, pred)`` against ``<gt>_<H>``, the copy
its ``copy_resize_gt`` writes: every file LANCZOS-resized to ``(int(w·H/h), H)`` and saved with
``Image.save(path)`` (PIL's defaults: JPEG quality 75). `evalpy_copy` below writes that folder from
that description. LaDI-VTON's val_metrics.py (`ladi`) scores against clean-fid custom statistics
of the original files (``make_custom_stats`` + ``compute_fid(gen, dataset_name=…,
dataset_split="custom")``). Both are run here for real, with diffbench's random Inception inside
clean-fid (`CleanFidInception`) and nothing written outside the test's folders. What these tests
check is which images form the real set and how they are resized, read and batched (clean-fid's
file listing, resize, feature rows, means, covariances, KID): clean-fid's ``frechet_distance``
(a scipy ``sqrtm`` of a 2048×2048 product, ~77 CPU-s each, six calls) is replaced by diffbench's
on clean-fid's own means and covariances (`cleanfid_net`). The parity of the two Fréchet formulas
at 2048 dimensions is checked once, on 60 images' rows, in
``tests/test_score_parity.py::test_clean_protocol_fid_equals_cleanfid_frechet_distance`` (and at
64/128/256 dimensions in ``tests/test_metrics_functional.py``).

Tolerances (same float32 pool3 rows on both sides: same network, same clean-fid resize, same
images in the same batches):

- FID (`fid_tolerance`). clean-fid takes the means of float32 rows in float32 (a running sum of
  n rows: |Δμ_i| ≤ n·u32·max|f_i|), subtracts and dots them in float32 (≤ u32·|d_i| and
  D·u32·‖d‖²), so its ‖d‖² is off by at most 2·Σ|d_i|·|Δd_i| + D·u32·‖d‖²; diffbench does that in
  float64. Both take float64 covariances (np.cov centred; diffbench from float64 raw moments) and
  Tr√(S1S2) of them (eigh of S1^½S2S1^½ on both sides here; the bound also covers scipy's sqrtm,
  clean-fid's own). With D ≥ n only n−1 eigenvalues are
  non-zero: every computed eigenvalue is within ε = D·u64·(‖S1‖‖S2‖ + 2n·M²·(‖S1‖+‖S2‖)) of the
  exact one (backward-stable eigensolvers and the covariance rounding, through Weyl), and √ is
  ½-Hölder, so each of the D square roots moves by at most √ε: 2·D·√ε per library, twice that
  in FID.
- KID (`kid_tolerance`). Both evaluate clean-fid's float32 formula on the same rows and the same
  subsets (clean-fid after ``np.random.seed(2020)``, diffbench's seeded draws); what may differ
  is the rounding of the float32 sums: (m² + subsets + 8)·u32 times the largest value a subset's
  kernel terms can reach (4·κ_max, κ = (x·y/D + 1)³ ≥ 0).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffbench import results
from diffbench.adapters.folder import FolderAdapter
from diffbench.data.dresscode import DressCode
from diffbench.data.samples import SampleSet
from diffbench.data.vitonhd import VitonHD
from diffbench.features.inception import InceptionExtractor
from diffbench.generate import generate, merge_manifests
from diffbench.metrics.functional import frechet_distance
from diffbench.protocols import get_protocol
from diffbench.requests import task_requests
from diffbench.scoring.base import EvalContext, TaskInputs
from diffbench.scoring.distribution import evaluate as distribution_evaluate
from diffbench.suite import load_suite
from tests._rounding import fid_rows_bound as fid_tolerance
from tests._vton import (
    DC_IDS,
    SIZE,
    VH_IDS,
    weights_args,
    write_dresscode,
    write_generated,
    write_vitonhd,
)
from tests.test_vton_run import SUITES, run_suite

U32, U64 = 2.0 ** -24, 2.0 ** -53
HALF = (SIZE[0] // 2, SIZE[1] // 2)  # CatVTON's 512x384 against 1024x768, scaled down
BATCH = 3  # diffbench's --score-batch-size, and clean-fid's batch_size: the same batches


class CleanFidInception:
    """clean-fid's feature model replaced by diffbench's random Inception; keeps the rows."""

    def __init__(self, weights: Path):
        self.extractor = InceptionExtractor(weights, resize="clean")
        self.rows: list[np.ndarray] = []
        self.seen: dict[bytes, torch.Tensor] = {}  # compute_kid re-reads compute_fid's batches

    def build(self, mode, device=None, use_dataparallel=True):
        assert mode == "clean"
        return self

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        key = hashlib.sha256(batch.numpy().tobytes()).digest()
        if key not in self.seen:
            self.seen[key] = self.extractor.forward(batch)["pool3"]
        self.rows.append(self.seen[key].numpy())
        return self.seen[key]

    def take(self) -> np.ndarray:
        rows, self.rows = np.concatenate(self.rows), []
        return rows


@pytest.fixture()
def cleanfid_net(monkeypatch, inception_weights):
    import cleanfid.fid

    net = CleanFidInception(inception_weights)
    monkeypatch.setattr(cleanfid.fid, "build_feature_extractor", net.build)
    # Module docstring: the Fréchet formula's parity at 2048 dims is checked in test_score_parity.
    monkeypatch.setattr(cleanfid.fid, "frechet_distance", frechet_distance)
    return net


def cleanfid_kw() -> dict:
    return dict(mode="clean", num_workers=0, batch_size=BATCH, device=torch.device("cpu"),
                verbose=False)


def evalpy_copy(gt_folder: Path, height: int) -> Path:
    """eval.py's copy_resize_gt, from its description: every file LANCZOS to (int(w·H/h), H),
    saved under the same name with Image.save(path) (PIL's defaults), into <gt>_<H>."""
    new = Path(f"{gt_folder}_{height}")
    new.mkdir()
    for name in os.listdir(gt_folder):
        img = Image.open(gt_folder / name)
        w, h = img.size
        img.resize((int(w * height / h), height), Image.LANCZOS).save(new / name)
    return new


def kid_tolerance(real: np.ndarray, fake: np.ndarray, m: int, subsets: int = 100) -> float:
    """Bound on |diffbench KID − clean-fid KID| for the same rows and subsets (module docstring)."""
    rows = np.concatenate([real, fake]).astype(np.float64)
    kappa = (rows @ rows.T / rows.shape[1] + 1).max() ** 3
    return float((m * m + subsets + 8) * U32 * 4 * kappa)


def cleanfid_scores(net: CleanFidInception, gt: Path, pred: Path) -> dict:
    """eval.py's two calls: compute_fid(gt, pred) and, after seeding, compute_kid(gt, pred)."""
    from cleanfid import fid as cf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clean-fid's own warnings (its resize, its KID)
        fid = cf.compute_fid(str(gt), str(pred), use_dataparallel=False, **cleanfid_kw())
        rows = net.take()
        np.random.seed(2020)  # diffbench's KID seed; clean-fid itself leaves it unseeded
        kid = cf.compute_kid(str(gt), str(pred), use_dataparallel=False, **cleanfid_kw())
    n_real = len(os.listdir(gt))
    net.take()
    return {"fid": fid, "kid": kid, "real": rows[:n_real], "fake": rows[n_real:]}


def check_close(rec: dict, ref: dict) -> None:
    m = min(len(ref["real"]), len(ref["fake"]))
    fid_tol = fid_tolerance(ref["real"], ref["fake"])
    kid_tol = kid_tolerance(ref["real"], ref["fake"], m)
    assert abs(rec["metrics"]["fid"]["value"] - ref["fid"]) <= fid_tol, (rec["metrics"]["fid"],
                                                                         ref["fid"], fid_tol)
    assert abs(rec["metrics"]["kid"]["value"] - ref["kid"]) <= kid_tol, (rec["metrics"]["kid"],
                                                                         ref["kid"], kid_tol)


def tree(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


@pytest.mark.slow
def test_catvton_vitonhd_reals_are_evalpy_resized_jpeg_copy(tmp_path, inception_weights,
                                                            cleanfid_net, monkeypatch):
    root = write_vitonhd(tmp_path / "VITON-HD")
    made = tmp_path / "results"
    for i, pairing in enumerate(("paired", "unpaired")):  # CatVTON's default 512x384 output
        write_generated(made / pairing, [f"{p}.jpg" for p in VH_IDS], seed=10 + i, size=HALF)
    before = tree(root)
    res = run_suite("vitonhd", f"vitonhd={root}", f"{made}/{{pairing}}", tmp_path / "run",
                    inception_weights)
    assert res.exit_code == 0, res.output
    assert tree(root) == before  # nothing written beside (or into) the dataset
    from cleanfid import fid as cf

    gt = root / "test" / "image"
    copy = evalpy_copy(gt, HALF[1])
    originals = cf.get_folder_features(str(gt), cleanfid_net, **cleanfid_kw())
    cleanfid_net.take()
    for pairing in ("paired", "unpaired"):
        rec = results.read(tmp_path / "run" / "results" / f"{pairing}.json")
        ref = cleanfid_scores(cleanfid_net, copy, made / pairing)
        check_close(rec, ref)
        # Against the original files (diffbench before this fix) FID is far outside the bound.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # diffbench's Fréchet distance, as in cleanfid_net (module docstring)
            plain_fid = frechet_distance(originals.mean(0), np.cov(originals, rowvar=False),
                                         ref["fake"].mean(0), np.cov(ref["fake"], rowvar=False))
            np.random.seed(2020)
            plain_kid = cf.kernel_distance(originals, ref["fake"])
        assert abs(plain_fid - ref["fid"]) > 5 * fid_tolerance(ref["real"], ref["fake"])
        assert abs(plain_kid - ref["kid"]) > 5 * kid_tolerance(ref["real"], ref["fake"], 5)
        real = rec["references"]["real"]
        assert real["kind"] == "vitonhd-persons" and real["n"] == len(VH_IDS)
        assert real["preparation"].startswith("ground truth resized to 24x32 (width x height) "
                                              "LANCZOS, re-saved")
        assert "JPEG quality 75" in real["preparation"] and "copy_resize_gt" in real["preparation"]
        assert real["prepared"]["resized"] == len(VH_IDS) and real["prepared"]["height"] == 32
        assert rec["protocol"]["settings"]["params"]["reals"]["gt_resize"] == "lanczos-height"
        if pairing == "paired":  # torchmetrics' SSIM border is part of the record
            assert rec["metrics"]["ssim"]["details"]["settings"]["border"] == "valid"
    check_kid_subsets(tmp_path, root, copy, made, cleanfid_net, inception_weights, monkeypatch)


def check_kid_subsets(tmp_path, root, copy, made, net, weights, monkeypatch) -> None:
    """KID's subset rule with subsets smaller than the sets (m = 3 of 5): the draws must be
    clean-fid's after np.random.seed(2020), generated rows first as compute_kid(gt, pred) draws."""
    from cleanfid import fid as cf

    monkeypatch.setattr(cf, "kernel_distance",
                        functools.partial(cf.kernel_distance, max_subset_size=3))
    spec = load_suite(SUITES / "vitonhd.yaml").suite.tasks["unpaired"]
    inputs = TaskInputs("unpaired", spec, get_protocol("catvton"),
                        SampleSet(tmp_path / "run" / "samples" / "unpaired"),
                        VitonHD(root, "unpaired"), metric_args={"kid": {"subset_size": 3}})
    ctx = EvalContext(weights={"inception-2015-12-05": str(weights)}, batch_size=BATCH,
                      workers=0)  # the run cached the prepared reals' features
    got = distribution_evaluate(["kid"], inputs, ctx).metrics["kid"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.random.seed(2020)
        want = cf.compute_kid(str(copy), str(made / "unpaired"), use_dataparallel=False,
                              **cleanfid_kw())
    rows = net.take()
    real, fake = rows[:len(VH_IDS)], rows[len(VH_IDS):]
    assert got["details"]["subset_size"] == 3
    assert abs(got["value"] - want) <= kid_tolerance(real, fake, 3)


@pytest.mark.slow
def test_catvton_dresscode_reals_are_evalpy_copy_of_the_persons(tmp_path, inception_weights,
                                                                cleanfid_net):
    """eval.py pointed at a folder of exactly the task's persons (never the _1 garments)."""
    root = write_dresscode(tmp_path / "DressCode")
    made = tmp_path / "results"
    for i, pairing in enumerate(("paired", "unpaired")):
        for cat, ids in DC_IDS.items():
            write_generated(made / pairing / cat, [f"{x}_0.jpg" for x in ids], seed=20 + i,
                            size=HALF)
    res = run_suite("dresscode", f"dresscode={root}", f"{made}/{{pairing}}/{{category}}",
                    tmp_path / "run", inception_weights, "--task", "paired", "--task",
                    "unpaired")
    assert res.exit_code == 0, res.output
    for pairing in ("paired", "unpaired"):
        gt = tmp_path / f"gt-{pairing}"
        gt.mkdir()
        for p in DressCode(root, "all", pairing).reference_images().paths:
            shutil.copy(p, gt / p.name)
        pred = tmp_path / f"pred-{pairing}"  # eval.py reads one flat folder
        pred.mkdir()
        for f in (made / pairing).rglob("*.jpg"):
            shutil.copy(f, pred / f.name)
        rec = results.read(tmp_path / "run" / "results" / f"{pairing}.json")
        check_close(rec, cleanfid_scores(cleanfid_net, evalpy_copy(gt, HALF[1]), pred))
        assert rec["references"]["real"]["n"] == sum(len(v) for v in DC_IDS.values())


@pytest.mark.slow
def test_ladi_reals_are_the_original_files(tmp_path, inception_weights, cleanfid_net,
                                           monkeypatch):
    """LaDI's val_metrics.py: custom clean-fid statistics of test/image at its own size."""
    import cleanfid
    from cleanfid import fid as cf

    root = write_vitonhd(tmp_path / "VITON-HD")
    made = tmp_path / "results"
    for i, pairing in enumerate(("paired", "unpaired")):
        write_generated(made / pairing, [f"{p}.jpg" for p in VH_IDS], seed=30 + i, size=HALF)
    res = run_suite("vitonhd", f"vitonhd={root}", f"{made}/{{pairing}}", tmp_path / "run",
                    inception_weights, "--set", "tasks.paired.protocol=ladi", "--set",
                    "tasks.unpaired.protocol=ladi",
                    *[x for k, v in weights_args(("alex",)).items()
                      for x in ("--weights", f"{k}={v}")])
    assert res.exit_code == 0, res.output
    # clean-fid keeps custom statistics beside its package: point that at the test's folder
    monkeypatch.setattr(cleanfid, "__file__", str(tmp_path / "cleanfid" / "__init__.py"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cf.make_custom_stats("vitonhd_all", str(root / "test" / "image"), mode="clean",
                             batch_size=BATCH, device=torch.device("cpu"), verbose=False)
    real = cleanfid_net.take()
    for pairing in ("paired", "unpaired"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fid = cf.compute_fid(str(made / pairing), dataset_name="vitonhd_all",
                                 dataset_split="custom", use_dataparallel=False, **cleanfid_kw())
            np.random.seed(2020)
            kid = cf.compute_kid(str(made / pairing), dataset_name="vitonhd_all",
                                 dataset_split="custom", use_dataparallel=False, **cleanfid_kw())
        fake = cleanfid_net.take()[:len(VH_IDS)]
        rec = results.read(tmp_path / "run" / "results" / f"{pairing}.json")
        check_close(rec, {"fid": fid, "kid": kid, "real": real, "fake": fake})
        ref = rec["references"]["real"]
        assert ref["prepared"] == {"resized": 0, "sizes_wxh": {"48x64": 5}, "gt_resize": "none"}
        assert ref["preparation"].startswith("ground truth as is, 48x64 (width x height) (LaDI")


@pytest.mark.slow
def test_prepared_reals_cached_by_content_and_settings(tmp_path, inception_weights):
    """The prepared reals' features are cached in DIFFBENCH_HOME, never beside the dataset, and
    a changed ground-truth file or another height is a new key (no stale reuse)."""
    root = write_vitonhd(tmp_path / "VITON-HD")
    spec = load_suite(SUITES / "vitonhd.yaml").suite.tasks["unpaired"]
    ctx = EvalContext(weights={"inception-2015-12-05": str(inception_weights)},
                      batch_size=BATCH, workers=0, cache=True)

    def score(size):
        made = write_generated(tmp_path / f"made-{size[1]}", [f"{p}.jpg" for p in VH_IDS],
                               size=size)
        reader = VitonHD(root, "unpaired")
        out = tmp_path / f"samples-{size[1]}"
        if not out.exists():
            generate(FolderAdapter(str(made)), task_requests(spec, items=reader.items()), out,
                     batch_size=2, progress=False)
            merge_manifests(out)
        inputs = TaskInputs("unpaired", spec, get_protocol("catvton"), SampleSet(out), reader)
        return distribution_evaluate(["fid"], inputs, ctx)

    before = tree(root)
    first, again = score(HALF), score(HALF)
    assert "cache" not in first.references["real"] and "cache" in again.references["real"]
    cache = Path(again.references["real"]["cache"])
    assert Path(os.environ["DIFFBENCH_HOME"]) in cache.parents
    assert again.metrics["fid"]["value"] == first.metrics["fid"]["value"]
    other = score((12, 16))  # another prediction height: another key
    assert other.references["real"]["content_sha256"] != first.references["real"]["content_sha256"]
    assert tree(root) == before
    gt = root / "test" / "image" / f"{VH_IDS[0]}.jpg"
    Image.open(gt).transpose(Image.FLIP_LEFT_RIGHT).save(gt, quality=95)
    changed = score(HALF)
    assert "cache" not in changed.references["real"]
    assert changed.metrics["fid"]["value"] != first.metrics["fid"]["value"]


@pytest.mark.parametrize("task", ["paired", "unpaired"])
def test_mixed_prediction_sizes_refused_before_scoring(tmp_path, inception_weights, monkeypatch,
                                                       task):
    from diffbench.scoring import distribution, paired

    def started(*args, **kwargs):
        raise AssertionError("scoring started")

    monkeypatch.setattr(paired, "_score", started)
    monkeypatch.setattr(distribution, "load_side", started)
    root = write_vitonhd(tmp_path / "VITON-HD")
    made = tmp_path / "results"
    write_generated(made, [f"{p}.jpg" for p in VH_IDS[:3]], size=HALF)
    write_generated(made, [f"{p}.jpg" for p in VH_IDS[3:]], seed=2)  # the GT's own size
    res = run_suite("vitonhd", f"vitonhd={root}", made, tmp_path / "run", inception_weights,
                    "--task", task)
    assert res.exit_code == 2, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("diffbench: error:")]
    assert len(errors) == 1 and "Traceback" not in res.output, res.output
    assert f"task {task} has generated images of 2 sizes" in errors[0]
    assert "24x32: 3 (e.g. 00006_00.png, 00008_00.png, 00013_00.png)" in errors[0]
    assert "48x64: 2 (e.g. 00017_00.png, 00034_00.png)" in errors[0]
    assert not (tmp_path / "run" / "results" / f"{task}.json").exists()
