"""The Inception extractor against torch-fidelity's, on the same random weights file and images."""

from __future__ import annotations

import shutil
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from diffbench.errors import WeightsError
from diffbench.features.inception import InceptionExtractor
from tests._nets import make_inception_weights

SIZES = [(64, 64), (299, 299), (256, 192)]


def _smooth_images(n: int, hw: tuple[int, int], seed: int) -> np.ndarray:
    """uint8 N×H×W×3: upsampled 16×16 noise (closer to real images than pixel noise)."""
    base = torch.from_numpy(np.random.RandomState(seed).randint(0, 256, (n, 3, 16, 16))).float()
    up = torch.nn.functional.interpolate(base, size=hw, mode="bilinear", align_corners=False)
    return up.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def theirs(inception_weights):
    return FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                       feature_extractor_weights_path=str(inception_weights))


@pytest.fixture(scope="module")
def exact(inception_weights):
    return InceptionExtractor(inception_weights, exact=True)


@pytest.fixture(scope="module")
def fast(inception_weights):
    return InceptionExtractor(inception_weights)


def _ours(extractor: InceptionExtractor, images: np.ndarray) -> dict[str, torch.Tensor]:
    return extractor.forward(torch.stack([extractor.preprocess(im) for im in images]))


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_pool3_and_logits_match_torch_fidelity(hw, theirs, exact, fast):
    images = _smooth_images(2, hw, seed=hw[0])
    with torch.inference_mode():
        ref_pool3, ref_logits = theirs(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
    a = _ours(exact, images)
    # exact=True: torch-fidelity's layout and unfused BatchNorm, bit-identical on CPU.
    assert torch.equal(a["pool3"], ref_pool3) and torch.equal(a["logits_unbiased"], ref_logits)
    b = _ours(fast, images)
    # Fast path (BatchNorm folded, channels-last): float rounding only; measured max 6.5e-5
    # of the largest value over 50 images at 299×299, 6.1e-5 at 64×64.
    assert _max_rel(b["pool3"], ref_pool3) < 2e-4
    assert _max_rel(b["logits_unbiased"], ref_logits) < 2e-4
    assert b["pool3"].shape == (2, 2048) and b["logits_unbiased"].shape == (2, 1008)
    assert b["pool3"].dtype == torch.float32


def test_logits_unbiased_is_pool3_times_fc_weight(inception_weights, exact):
    out = _ours(exact, _smooth_images(2, (64, 64), seed=7))
    weight = torch.load(str(inception_weights), weights_only=True)["fc.weight"]
    expected = out["pool3"].double() @ weight.double().T
    assert torch.allclose(out["logits_unbiased"].double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("which", ["exact", "fast"])
@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_sfid_is_mixed_6d_branch1x1_first_7_channels_in_nhwc_order(which, exact, fast):
    extractor = exact if which == "exact" else fast
    maps: list[torch.Tensor] = []
    handle = extractor.net.Mixed_6d.branch1x1.register_forward_hook(
        lambda _m, _i, out: maps.append(out.detach().clone()))
    try:
        out = _ours(extractor, _smooth_images(3, (64, 64), seed=11))
    finally:
        handle.remove()
    (fmap,) = maps
    assert fmap.shape == (3, 192, 17, 17)
    assert out["sfid"].shape == (3, 2023)
    expected = fmap[:, :7].permute(0, 2, 3, 1).reshape(3, -1)  # TF: NHWC [..., :7], flattened
    assert torch.equal(out["sfid"], expected)
    # NHWC order: value (row i, column j, channel c) sits at (i * 17 + j) * 7 + c.
    assert out["sfid"][1, (5 * 17 + 9) * 7 + 4] == fmap[1, 4, 5, 9]
    assert float(fmap[:, :7].min()) >= 0.0  # taken after BatchNorm and ReLU


def test_sfid_can_be_left_out(inception_weights):
    extractor = InceptionExtractor(inception_weights, sfid=False)
    out = _ours(extractor, _smooth_images(1, (64, 64), seed=1))
    assert set(out) == {"pool3", "logits_unbiased"} == set(extractor.layers)


def test_random_weights_give_well_scaled_features(fast):
    out = _ours(fast, _smooth_images(4, (64, 64), seed=3))
    assert (out["pool3"] > 0).float().mean() > 0.5  # not all zeros after the ReLUs
    assert out["logits_unbiased"].std() > 0.5
    assert out["sfid"].std() > 0


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_make_inception_weights_is_seeded(inception_weights, tmp_path):
    # The session's file was made with the default seed (tests/conftest.py): one build, not two.
    a = torch.load(str(make_inception_weights(tmp_path / "a.pth", seed=0)), weights_only=True)
    b = torch.load(str(inception_weights), weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "Mixed_6d.branch1x1.conv.weight" in a and a["fc.weight"].shape == (1008, 2048)


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_fingerprint_changes_with_resize_and_weights(inception_weights, tmp_path, exact):
    fp = exact.fingerprint()
    assert fp["resize"] == "tf-bilinear" and fp["size"] == 299
    assert fp["layers"] == ["pool3", "logits_unbiased", "sfid"]
    assert len(fp["weights_sha256"]) == 64
    clean = InceptionExtractor(inception_weights, resize="clean")
    assert clean.fingerprint()["resize"] == "clean"
    assert clean.fingerprint_hash() != exact.fingerprint_hash()
    copy = shutil.copy(inception_weights, tmp_path / "copy.pth")
    # Content, not path, names the weights; the fast path computes the same features.
    assert InceptionExtractor(copy, exact=True).fingerprint_hash() == exact.fingerprint_hash()
    assert InceptionExtractor(copy).fingerprint_hash() == exact.fingerprint_hash()
    state = torch.load(str(inception_weights), weights_only=True)  # other weights: one tensor
    state["fc.bias"] = state["fc.bias"] + 1.0  # moved (no second Inception build)
    torch.save(state, tmp_path / "other.pth")
    other = tmp_path / "other.pth"
    assert InceptionExtractor(other).fingerprint_hash() != exact.fingerprint_hash()


def test_missing_or_foreign_weights_are_user_errors(tmp_path):
    with pytest.raises(WeightsError, match="diffbench weights fetch"):
        InceptionExtractor(tmp_path / "absent.pth")
    junk = tmp_path / "junk.pth"
    torch.save({"conv.weight": torch.zeros(1)}, junk)
    with pytest.raises(WeightsError, match="torch-fidelity"):
        InceptionExtractor(junk)


def test_unknown_resize_mode_is_refused(inception_weights):
    with pytest.raises(ValueError, match="tf-bilinear"):
        InceptionExtractor(inception_weights, resize="bicubic")


def test_extractor_protocol_and_cached_weights_hash(exact, tmp_path):
    import hashlib

    from diffbench.features.base import Extractor
    from diffbench.fsutil import file_sha256

    assert isinstance(exact, Extractor)
    path = tmp_path / "blob.bin"
    path.write_bytes(b"abc")
    assert file_sha256(path) == hashlib.sha256(b"abc").hexdigest()
    path.write_bytes(b"abcd")  # new size and mtime: computed again, not served from the cache
    assert file_sha256(path) == hashlib.sha256(b"abcd").hexdigest()


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_cpu_micro_batches_change_no_value(inception_weights):
    # The CPU runs the network 8 images at a time (cache blocking); a 19-image batch run whole
    # and run in slices 8 + 8 + 3 gives the same bits.
    from diffbench.features.inception import CPU_MICRO_BATCH

    sliced = InceptionExtractor(inception_weights)
    images = torch.stack([sliced.preprocess(im) for im in _smooth_images(19, (64, 64), seed=4)])
    assert sliced.micro_batch == CPU_MICRO_BATCH == 8
    whole = InceptionExtractor(inception_weights, micro_batch=0)
    a, b = sliced.forward(images), whole.forward(images)
    assert set(a) == set(b) == {"pool3", "logits_unbiased", "sfid"}
    for k in a:
        assert a[k].shape[0] == 19 and torch.equal(a[k], b[k]), k


@contextmanager
def _plain_convs_on_onednn():
    """PyTorch's plain CPU convolution takes oneDNN for a 1×1 kernel with a batch under 16
    only when it has more than one thread (`ConvParams::use_mkldnn`: its own kernel is faster
    single-threaded), so with one thread (OMP_NUM_THREADS=1, a pytest-xdist worker) the plain
    path is another kernel and rounds differently. The prepacked path always runs oneDNN; the
    bit-identity below is against the plain path on oneDNN, so give it two threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(2, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_cpu_prepacked_fused_convs_change_no_value(inception_weights):
    # The CPU path runs conv + bias + ReLU as one oneDNN call on weights packed once (for the
    # first batch's shape); batches of other sizes give the same bits as the plain path on
    # oneDNN (`_plain_convs_on_onednn`).
    from diffbench.features.inception import load_inception

    plain = load_inception(inception_weights).fold_batchnorm().to(memory_format=torch.channels_last)
    fused = load_inception(inception_weights).fold_batchnorm().to(memory_format=torch.channels_last)
    if not fused.prepack():
        pytest.skip("this torch build has no oneDNN")
    ext = InceptionExtractor(inception_weights)
    images = torch.stack([ext.preprocess(im) for im in _smooth_images(7, (48, 48), seed=6)])
    x = ((images - 128) / 128).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), _plain_convs_on_onednn():
        for n in (4, 1, 7):  # packed for 4, then used for 1 and 7
            a, b = fused(x[:n]), plain(x[:n])
            assert all(torch.equal(a[k], b[k]) for k in a), n
    assert all(m._packed is not None for m in fused.modules() if getattr(m, "prepacked", False))
    assert ext.net.Conv2d_1a_3x3.prepacked  # the CPU extractor uses it
    assert not InceptionExtractor(inception_weights, exact=True).net.Conv2d_1a_3x3.prepacked


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_prepack_falls_back_to_the_plain_path_where_onednn_refuses(inception_weights, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("no oneDNN reorder here")

    ext = InceptionExtractor(inception_weights)
    images = torch.stack([ext.preprocess(im) for im in _smooth_images(3, (40, 40), seed=8)])
    expected = ext.forward(images)
    monkeypatch.setattr(torch._C._nn, "mkldnn_reorder_conv2d_weight", refuse)
    fresh = InceptionExtractor(inception_weights)
    with _plain_convs_on_onednn():
        got = fresh.forward(images)
    assert not fresh.net.Conv2d_1a_3x3.prepacked  # fell back, for good
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_every_inception_protocol_reads_a_layer_the_network_gives():
    """`INCEPTION_LAYERS` (which layer each metric reads) names layers of this extractor only."""
    from diffbench.features.inception import LAYERS
    from diffbench.protocols import INCEPTION_LAYERS, get_protocol
    from diffbench.registry import PROTOCOLS

    assert set(INCEPTION_LAYERS.values()) <= set(LAYERS)
    for name in PROTOCOLS.names():
        proto = get_protocol(name)
        if proto.extractor == "inception":
            assert set(proto.layers.values()) <= set(LAYERS), name
