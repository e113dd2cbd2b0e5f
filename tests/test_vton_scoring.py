"""The paired family: each protocol's SSIM/LPIPS equal a per-image loop in the style of the script
the protocol names (PIL preparation, then torchmetrics / scikit-image / lpips per image), and bad
inputs give one-line errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from diffbench.adapters.folder import FolderAdapter
from diffbench.data.samples import SampleSet
from diffbench.data.vitonhd import VitonHD
from diffbench.errors import ConfigError, DataError, MetricInputError
from diffbench.generate import generate, merge_manifests
from diffbench.protocols import get_protocol
from diffbench.requests import task_requests
from diffbench.scoring.base import EvalContext, TaskInputs
from diffbench.scoring.paired import evaluate
from diffbench.suite import DatasetSpec, TaskMetric, TaskSpec
from tests._vton import reference_lpips, weights_args, write_generated, write_vitonhd


def task(protocol: str, pairing: str = "paired") -> TaskSpec:
    return TaskSpec(condition="tryon", protocol=protocol,
                    dataset=DatasetSpec(name="vitonhd", reader="vitonhd",
                                        args={"pairing": pairing}),
                    metrics={"ssim": TaskMetric(), "lpips": TaskMetric()})


def build(tmp_path: Path, protocol: str, size=(48, 64), pairing: str = "paired",
          metric_args=None) -> TaskInputs:
    root = write_vitonhd(tmp_path / "vitonhd")
    spec = task(protocol, pairing)
    ds = VitonHD(root, pairing=pairing)
    reqs = task_requests(spec, items=ds.items())
    made = write_generated(tmp_path / "made", [f"{r.key}.jpg" for r in reqs], size=size)
    out = tmp_path / "samples"
    generate(FolderAdapter(str(made)), reqs, out, batch_size=2, progress=False)
    merge_manifests(out)
    return TaskInputs("vitonhd-paired", spec, get_protocol(protocol), SampleSet(out), ds,
                      metric_args=metric_args or {})


def ctx(**kw) -> EvalContext:
    return EvalContext(weights=weights_args(), workers=kw.pop("workers", 0),
                       batch_size=kw.pop("batch_size", 2), **kw)


def to01(img: Image.Image) -> torch.Tensor:
    """torchvision ToTensor in float64 (the scripts' float32 differs by ~1e-5, see ssim.py)."""
    return torch.from_numpy(np.asarray(img)).permute(2, 0, 1)[None].double() / 255


def lpips_of(net: str, gt: Image.Image, pred: Image.Image) -> float:
    def pm1(img):
        return (torch.from_numpy(np.asarray(img)).permute(2, 0, 1)[None].float() / 255) * 2 - 1
    with torch.no_grad():
        return float(reference_lpips(net)(pm1(gt), pm1(pred)))


def catvton_direct(inputs: TaskInputs) -> dict[str, float]:
    """CatVTON eval.py: GT LANCZOS to the prediction's height, re-saved as JPEG (quality 75)."""
    ssim, lp = [], []
    for key in inputs.samples.keys:
        pred = Image.open(inputs.samples.path(key)).convert("RGB")
        gt = Image.open(inputs.item(key).refs["gt"])
        if gt.height != pred.height:
            gt = gt.resize((int(gt.width * pred.height / gt.height), pred.height), Image.LANCZOS)
            buf = io.BytesIO()
            gt.save(buf, format="JPEG")
            gt = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        full = tm_ssim(to01(pred), to01(gt), data_range=1.0, return_full_image=True)[1]
        ssim.append(full[..., 5:-5, 5:-5].mean().item())  # torchmetrics <= 1.4.1
        lp.append(lpips_of("squeeze", gt, pred))
    return {"ssim": float(np.mean(ssim)), "lpips": float(np.mean(lp))}


def ladi_direct(inputs: TaskInputs) -> dict[str, float]:
    """LaDI-VTON val_metrics.py: both images Resize((512, 384)) (PIL bilinear), AlexNet LPIPS."""
    ssim, lp = [], []
    for key in inputs.samples.keys:
        pred = Image.open(inputs.samples.path(key)).convert("RGB").resize((384, 512),
                                                                           Image.BILINEAR)
        gt = Image.open(inputs.item(key).refs["gt"]).convert("RGB").resize((384, 512),
                                                                            Image.BILINEAR)
        full = tm_ssim(to01(pred), to01(gt), data_range=1.0, return_full_image=True)[1]
        ssim.append(full[..., 5:-5, 5:-5].mean().item())
        lp.append(lpips_of("alex", gt, pred))
    return {"ssim": float(np.mean(ssim)), "lpips": float(np.mean(lp))}


def hrviton_direct(inputs: TaskInputs) -> dict[str, float]:
    """HR-VITON evaluate.py: skimage SSIM on convert('L'), LPIPS AlexNet at 128x128."""
    ssim, lp = [], []
    for key in inputs.samples.keys:
        pred = Image.open(inputs.samples.path(key)).convert("RGB")
        gt = Image.open(inputs.item(key).refs["gt"])
        if gt.size != pred.size:
            gt = gt.resize(pred.size, Image.BILINEAR)
        ssim.append(structural_similarity(np.asarray(gt.convert("L")),
                                          np.asarray(pred.convert("L")), data_range=255,
                                          gaussian_weights=True, use_sample_covariance=False))
        lp.append(lpips_of("alex", gt.resize((128, 128), Image.BILINEAR),
                           pred.resize((128, 128), Image.BILINEAR)))
    return {"ssim": float(np.mean(ssim)), "lpips": float(np.mean(lp))}


@pytest.mark.parametrize("protocol,size,direct", [
    ("catvton", (48, 64), catvton_direct),
    ("catvton", (24, 32), catvton_direct),   # the GT is resized (and JPEG round-tripped)
    pytest.param("ladi", (24, 32), ladi_direct, marks=pytest.mark.slow),  # 512x384 loops
    ("hr-viton", (24, 32), hrviton_direct),
])
def test_protocols_equal_per_image_script_loops(tmp_path, protocol, size, direct):
    inputs = build(tmp_path, protocol, size)
    got = evaluate(["ssim", "lpips"], inputs, ctx())
    want = direct(inputs)
    for metric in ("ssim", "lpips"):
        entry = got.metrics[metric]
        assert abs(entry["value"] - want[metric]) < 1e-6, (metric, entry["value"], want[metric])
        assert entry["n"] == {"generated": 5} and entry["protocol"] == protocol
        assert len(entry["details"]["worst"]) == 5
    assert got.metrics["ssim"]["higher_is_better"] and not got.metrics["lpips"]["higher_is_better"]
    assert got.metrics["lpips"]["extractor"] and got.counts == {"scored": 5}
    assert list(got.extractors) == [f"lpips-{'squeeze' if protocol == 'catvton' else 'alex'}"]


def test_batch_size_workers_and_bootstrap(tmp_path):
    inputs = build(tmp_path, "catvton")
    a = evaluate(["ssim", "lpips"], inputs, ctx(batch_size=1))
    b = evaluate(["ssim", "lpips"], inputs, ctx(batch_size=5, workers=1, bootstrap=200))
    for m in ("ssim", "lpips"):
        assert abs(a.metrics[m]["value"] - b.metrics[m]["value"]) < 1e-7
        ci = b.metrics[m]["ci"]
        assert ci["low"] <= b.metrics[m]["value"] <= ci["high"] and ci["low"] < ci["high"]
        assert "ci" not in a.metrics[m]


def test_suite_args_override_protocol(tmp_path):
    inputs = build(tmp_path, "catvton", metric_args={"ssim": {"border": "reflect"},
                                                     "lpips": {"net": "alex"}})
    got = evaluate(["ssim", "lpips"], inputs, ctx())
    assert got.metrics["ssim"]["details"]["settings"]["border"] == "reflect"
    assert "lpips-alex" in got.extractors
    bad = build(tmp_path / "b", "catvton", metric_args={"ssim": {"windw": 7}})
    with pytest.raises(ConfigError, match="metric ssim: windw: unknown argument; accepted: color"):
        evaluate(["ssim"], bad, ctx())


def test_errors_are_one_line(tmp_path):
    unpaired = build(tmp_path / "u", "catvton", pairing="unpaired")
    with pytest.raises(MetricInputError, match="has none \\(refs.gt\\).*paired task") as exc:
        evaluate(["ssim"], unpaired, ctx())
    assert "\n" not in str(exc.value)
    # 24x32 predictions against 48x64 ground truth, under a protocol that does not resize
    mism = build(tmp_path / "m", "catvton", size=(24, 32),
                 metric_args={"ssim": {"gt_resize": "none"}})
    with pytest.raises(MetricInputError, match="24x32 but its ground truth .* is 48x64"):
        evaluate(["ssim"], mism, ctx())
    gone = build(tmp_path / "g", "catvton")
    gone.samples.path(gone.samples.keys[2]).unlink()
    with pytest.raises(DataError, match="generated image of '00013_00' is missing") as exc:
        evaluate(["ssim", "lpips"], gone, ctx())
    assert "\n" not in str(exc.value)
    nogt = build(tmp_path / "n", "catvton")
    Path(nogt.item(nogt.samples.keys[0]).refs["gt"]).unlink()
    with pytest.raises(DataError, match="ground truth of '00006_00' not found"):
        evaluate(["lpips"], nogt, ctx())


def test_emulated_ranks_equal_one_process(tmp_path, monkeypatch):
    from tests.test_shard_state import emulated_ranks

    inputs = build(tmp_path, "catvton")
    one = evaluate(["ssim", "lpips"], inputs, ctx())
    ranks = emulated_ranks(monkeypatch, 2, lambda c: evaluate(
        ["ssim", "lpips"], inputs, ctx(rank=c.rank, world_size=c.world_size)))
    for got in ranks:  # 5 pairs in batches of 2: rank 0 scores pairs 0, 1, 4
        assert got.metrics == one.metrics
