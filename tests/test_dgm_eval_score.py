"""`diffbench score --protocol dgm-eval` computes dgm-eval's two-set metrics from the features.

A tiny random DINOv2 of the real architecture (tests/test_fd_dinov2.py) stands in for ViT-L/14;
the record's values are compared with the metric functions on the same float32 rows (one batch
of 24, as the scorer extracts them), and where it is cheap with `tests/_dgm_eval.py`, the
independent plain implementation of dgm-eval's protocol.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from diffbench.cli import main
from diffbench.features.dinov2 import DinoV2Extractor
from diffbench.metrics import dgm
from diffbench.metrics.spec import get_spec
from diffbench.protocols import get_protocol
from tests import _dgm_eval as ref
from tests._rounding import fid_rows_bound
from tests.conftest import write_images
from tests.test_dgm_eval import vendi_rel_bound
from tests.test_fd_dinov2 import tiny_weights  # noqa: F401  (the fixture)

NEW = ("fd_eff", "fd_infinity", "kd", "sw_approx", "authpct", "vendi", "realism")


def test_dgm_eval_protocol_defines_them_on_the_dinov2_class_token():
    proto = get_protocol("dgm-eval")
    for name in (*NEW, "vendi_per_class"):
        assert name in proto.metrics and proto.layers[name] == "dinov2_cls"
        assert "dgm-eval" in get_spec(name).protocols()
    # the existing numbers keep their settings
    assert proto.param("prdc") == {"nearest_k": 5, "subsample": 10000, "seed": 13579,
                                   "features": "protocol"}
    assert proto.param("fd_dinov2") == {"resize_mode": "pil"}


def test_score_cli_writes_them(tiny_weights, tmp_path):  # noqa: F811
    real = write_images(tmp_path / "real", 24, 0)
    fake = write_images(tmp_path / "fake", 24, 1, shift=30)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, [
        "score", "--real", str(real), "--fake", str(fake), "--protocol", "dgm-eval",
        "--metrics", ",".join(NEW), "--weights", f"dinov2-vitl14={tiny_weights}",
        "--workers", "0", "--batch-size", "24", "--json", str(out)])
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())["metrics"]
    ext = DinoV2Extractor(tiny_weights, resize_mode="pil")

    def rows(folder):
        ims = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]
        return ext.forward(torch.stack([ext.preprocess(im) for im in ims]))["dinov2_cls"].numpy()

    r, f = rows(real).astype(np.float64), rows(fake).astype(np.float64)
    # moments: diffbench accumulates them batch-wise from the same float32 rows; 24 rows in 64
    # dims give rank-deficient covariances: fid_rows_bound (tests/_rounding.py) derives it
    assert abs(m["fd_eff"]["value"] - ref.compute_efficient_fd_with_reps(r, f)) <= \
        fid_rows_bound(rows(real), rows(fake))
    # sw_approx from float64 moments summed batch-wise vs at once: each sum of n rows differs by
    # at most n·ε relatively, and the difference of the two sets' moments amplifies that by
    # (|a| + |b|) / |a - b| (bounded here by the means' norms; the second-moment term likewise)
    eps, (mx, my) = np.finfo(np.float64).eps, (r.mean(0), f.mean(0))
    amp_mean = (np.linalg.norm(mx) + np.linalg.norm(my)) / np.linalg.norm(mx - my)
    m2x, m2y = (r * r).sum(1).mean(), (f * f).sum(1).mean()
    amp_m2 = (m2x + m2y) / max(abs(m2x - m2y), eps)
    sw_rel = 4 * len(r) * eps * max(1.0, amp_mean, amp_m2)
    assert m["sw_approx"]["value"] == pytest.approx(ref.sw_approx(r, f), rel=sw_rel)
    # rows: the same float32 rows, so the same functions give the same numbers
    assert m["fd_infinity"]["value"] == dgm.fd_infinity(r, f)[0]
    assert m["fd_infinity"]["details"]["sizes"] == dgm.fd_infinity_sizes(24).tolist()
    assert (m["kd"]["value"], m["kd"]["std"]) == dgm.kd(rows(real), rows(fake))
    assert m["kd"]["details"]["subset_size"] == 24 and m["kd"]["details"]["seed"] == 13579
    assert m["authpct"]["value"] == dgm.authpct(r, f)
    assert m["vendi"]["value"] == pytest.approx(ref.compute_vendi_score(f),
                                                rel=vendi_rel_bound(len(f)))
    assert len(m["realism"]["details"]["per_sample"]) == 24 and m["realism"]["details"]["rows"] == [24, 24]
    for key in NEW:
        assert m[key]["protocol"] == "dgm-eval" and np.isfinite(m[key]["value"])


def test_vendi_per_class_needs_labels(tiny_weights, tmp_path):  # noqa: F811
    real = write_images(tmp_path / "real", 8, 0)
    res = CliRunner().invoke(main, [
        "score", "--real", str(real), "--fake", str(real), "--protocol", "dgm-eval",
        "--metrics", "vendi_per_class", "--weights", f"dinov2-vitl14={tiny_weights}",
        "--workers", "0"])
    assert res.exit_code == 2
    assert "class label" in res.output and "Traceback" not in res.output


def test_diffbench_metrics_lists_them_with_dgm_eval():
    res = CliRunner().invoke(main, ["metrics"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    for name in (*NEW, "vendi_per_class"):
        at = next(i for i, ln in enumerate(lines) if ln.split()[:1] == [name])
        assert "dgm-eval" in lines[at]  # the summary names the code it follows
        assert "protocols: dgm-eval" in "\n".join(lines[at:at + 4])
