"""FD_DINOv2: diffbench's DINOv2 ViT and EDM2 preprocessing vs the reference code path.

The reference: EDM2's ``DINOv2Detector.__call__`` (NVlabs/edm2 ``calculate_metrics.py``) is
transcribed below (`_edm2_detector`), and the model is the ``dinov2`` package's
``DinoVisionTransformer`` (PyPI 0.0.1.dev2, imported without its pinned dependencies: install
it with ``pip install --no-deps dinov2==0.0.1.dev2``, as ``make install`` does; those tests skip
without it). Both load
the same random state dict of the real architecture class (a tiny width/depth; one slow test
loads the full ViT-L/14 shape).

Bounds: the exactness checks run both networks in float64 on the same float32 preprocessed
input, so the only differences are float64 rounding in different operation orders (SDPA vs
explicit softmax attention): about depth·width·2⁻⁵³ ≈ 1e-13 relative; 1e-9 is asked. The
preprocessing is the same float32 arithmetic as EDM2's and is compared for equality.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from diffbench.cli import main
from diffbench.features.dinov2 import DinoV2Extractor, DinoV2Preprocess, config_of, load_dinov2
from diffbench.features.dinov2_vit import VITL14, DinoV2ViT, ViTConfig
from diffbench.metrics import functional as F
from tests._rounding import fid_rows_bound
from tests.conftest import write_images

TINY = ViTConfig(embed_dim=64, depth=2, num_heads=1, mlp_ratio=4.0)


def _random_state(cfg: ViTConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = DinoV2ViT(cfg).state_dict()
    for key, value in state.items():  # visible weights everywhere (zeros would hide mistakes)
        state[key] = torch.randn_like(value) * (0.08 if value.dim() > 1 else 0.5)
    for key in state:
        if key.endswith("norm1.weight") or key.endswith("norm2.weight") or key == "norm.weight":
            state[key] = 1 + 0.1 * torch.randn_like(state[key])
    return state


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("dinov2") / "dinov2-tiny-random.pth"
    torch.save(_random_state(TINY), path)
    return path


def _edm2_detector(x: torch.Tensor, resize_mode: str) -> torch.Tensor:
    """EDM2 DINOv2Detector.__call__ up to the model, transcribed (NCHW uint8 in)."""
    if resize_mode == "pil":
        arr = x.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        arr = np.stack([np.uint8(Image.fromarray(a, "RGB").resize(
            (224, 224), Image.Resampling.BICUBIC)) for a in arr])
        x = torch.from_numpy(arr).permute(0, 3, 1, 2)
    else:
        x = torch.nn.functional.interpolate(x.to(torch.float32), size=(224, 224),
                                            mode="bicubic", antialias=True)
    x = x.to(torch.float32) / 255
    x = x - torch.tensor([0.485, 0.456, 0.406]).reshape(1, -1, 1, 1)
    return x / torch.tensor([0.229, 0.224, 0.225]).reshape(1, -1, 1, 1)


def _images(n: int, size=(96, 80), seed: int = 0) -> np.ndarray:
    rs = np.random.RandomState(seed)
    return rs.randint(0, 256, (n, size[0], size[1], 3)).astype(np.uint8)


@pytest.mark.parametrize("mode", ["torch", "pil"])
def test_preprocessing_equals_edm2_detector(mode):
    images = _images(4)
    ours = torch.stack([DinoV2Preprocess(mode)(im) for im in images])
    theirs = _edm2_detector(torch.from_numpy(images).permute(0, 3, 1, 2), mode)
    assert ours.dtype == torch.float32 and ours.shape == (4, 3, 224, 224)
    assert torch.equal(ours, theirs)


def _reference_model(state, cfg: ViTConfig):
    vt = pytest.importorskip("dinov2.models.vision_transformer")
    ref = vt.DinoVisionTransformer(img_size=cfg.img_size, patch_size=cfg.patch_size,
                                   embed_dim=cfg.embed_dim, depth=cfg.depth,
                                   num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio,
                                   init_values=1.0, ffn_layer="mlp", block_chunks=0)
    ref.load_state_dict(state, strict=True)
    return ref.eval()


def test_pos_embed_interpolation_equals_reference():
    """518 px (37×37) → 224 px (16×16) with the hub's scale factor 16.1/37, not size 16."""
    state = _random_state(TINY, 1)
    ref = _reference_model(state, TINY)
    ours = DinoV2ViT(TINY)
    ours.load_state_dict(state)
    tokens = torch.zeros(1, 1 + 16 * 16, TINY.embed_dim)
    a = ours.interpolate_pos_encoding(tokens, 224, 224)
    b = ref.interpolate_pos_encoding(tokens, 224, 224)
    assert a.shape == (1, 257, TINY.embed_dim) and torch.equal(a, b)
    by_size = torch.nn.functional.interpolate(
        state["pos_embed"][:, 1:].reshape(1, 37, 37, -1).permute(0, 3, 1, 2), size=(16, 16),
        mode="bicubic")
    assert not torch.allclose(a[0, 1:], by_size.permute(0, 2, 3, 1).reshape(256, -1))


@pytest.mark.parametrize("mode", ["torch", "pil"])
@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_features_and_fd_match_reference_float64(tiny_weights, mode):
    state = torch.load(tiny_weights, weights_only=True)
    ref = _reference_model(state, TINY).double()
    ext = DinoV2Extractor(tiny_weights, resize_mode=mode)
    ours_net = ext.net.double()
    # more rows than the 64 dims: full-rank covariances (a rank-deficient FD amplifies rounding)
    real, fake = _images(80, (40, 48), seed=1), _images(80, (36, 30), seed=2)
    feats = {}
    for name, images in (("real", real), ("fake", fake)):
        batch = torch.stack([ext.preprocess(im) for im in images])
        theirs_in = _edm2_detector(torch.from_numpy(images).permute(0, 3, 1, 2), mode)
        with torch.no_grad():
            ours = ours_net(batch.double()).numpy()
            theirs = ref(theirs_in.double()).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9 * np.abs(theirs).max())
        feats[name] = (ours, theirs)

    def fd(i):
        r, f = feats["real"][i], feats["fake"][i]
        return F.frechet_distance(r.mean(0), np.cov(r, rowvar=False),
                                  f.mean(0), np.cov(f, rowvar=False))

    # FD is a difference of traces (here ~1e3 times FD itself): its rounding is relative to
    # that scale, 1e-9 of it (features agree to ~1e-13), and within the 1e-6 of FD.
    r, f = feats["real"][1], feats["fake"][1]
    scale = np.trace(np.cov(r, rowvar=False)) + np.trace(np.cov(f, rowvar=False))
    assert abs(fd(0) - fd(1)) <= 1e-9 * scale
    assert fd(0) == pytest.approx(fd(1), rel=1e-6)


def test_float32_extractor_close_to_reference(tiny_weights):
    """The protocol's float32 forward vs the reference in float32: rounding only.

    Bound: each float32 op rounds at 2⁻²⁴ ≈ 6e-8 relative; through 2 blocks of width 64 the
    accumulated relative error stays below ~1e-5 of the feature scale (measured ~1e-6)."""
    state = torch.load(tiny_weights, weights_only=True)
    ref = _reference_model(state, TINY)
    ext = DinoV2Extractor(tiny_weights, resize_mode="torch")
    images = _images(6, seed=3)
    batch = torch.stack([ext.preprocess(im) for im in images])
    ours = ext.forward(batch)["dinov2_cls"]
    with torch.no_grad():
        theirs = ref(batch)
    assert ours.dtype == torch.float32 and ours.shape == (6, TINY.embed_dim)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-5 * float(theirs.abs().max()))


def test_config_read_from_state_dict_and_strict_load(tiny_weights, tmp_path):
    assert config_of(torch.load(tiny_weights, weights_only=True)) == TINY
    state = torch.load(tiny_weights, weights_only=True)
    state["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    from diffbench.errors import WeightsError
    with pytest.raises(WeightsError, match="DINOv2"):
        load_dinov2(bad)


@pytest.mark.slow  # two ViT-L/14 (2×304M parameters) in memory
def test_full_vitl14_shape_loads_strictly():
    vt = pytest.importorskip("dinov2.models.vision_transformer")
    ref = vt.vit_large(patch_size=14, img_size=518, init_values=1.0, block_chunks=0)
    state = ref.state_dict()
    assert config_of(state) == VITL14
    ours = DinoV2ViT(VITL14)
    ours.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("protocol,metrics", [("edm2", "fid,fd_dinov2"),
                                              ("dgm-eval", "fd_dinov2,prdc")])
@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_score_cli_runs_with_weights_files(protocol, metrics, tiny_weights, inception_weights,
                                           tmp_path):
    real = write_images(tmp_path / "real", 16, 0)
    fake = write_images(tmp_path / "fake", 16, 1, shift=30)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, [
        "score", "--real", str(real), "--fake", str(fake), "--protocol", protocol,
        "--metrics", metrics, "--weights", f"dinov2-vitl14={tiny_weights}",
        "--weights", f"inception-2015-12-05={inception_weights}", "--workers", "0",
        "--batch-size", "16", "--json", str(out)])  # one batch of 16, as `rows` below
    assert res.exit_code == 0, res.output
    record = json.loads(out.read_text())
    assert record["protocol"]["name"] == protocol
    # the same value from the features directly
    ext = DinoV2Extractor(tiny_weights, resize_mode="torch" if protocol == "edm2" else "pil")

    def rows(folder):
        ims = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]
        return ext.forward(torch.stack([ext.preprocess(im) for im in ims]))["dinov2_cls"].numpy()

    r32, f32 = rows(real), rows(fake)
    r, f = r32.astype(np.float64), f32.astype(np.float64)
    expected = F.frechet_distance(r.mean(0), np.cov(r, rowvar=False), f.mean(0),
                                  np.cov(f, rowvar=False))
    # The same float32 rows (same batch, same network), moments taken two ways in float64; 16
    # rows in 64 dims: rank-deficient covariances, bounded by fid_rows_bound (derived there).
    got = record["metrics"]["fd_dinov2"]["value"]
    assert abs(got - expected) <= fid_rows_bound(r32, f32), (got, expected)
    if protocol == "dgm-eval":
        assert record["metrics"]["coverage"]["value"] == F.prdc(rows(real), rows(fake))["coverage"]
    else:
        assert np.isfinite(record["metrics"]["fid"]["value"])
