"""Resize modes before Inception: parity with torch-fidelity (TF1 bilinear) and clean-fid (PIL bicubic)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from cleanfid.resize import make_resizer
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from diffbench.features.inception import Preprocess
from diffbench.features.resize import (
    MODES,
    clean_resize,
    normalise,
    tf1_bilinear,
    tf1_bilinear_image,
)

SIZES = [(64, 64), (256, 192), (17, 300), (512, 400), (299, 299), (1, 1)]


def _image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)


@pytest.mark.parametrize("hw", SIZES)
def test_tf1_bilinear_is_bit_exact_with_torch_fidelity(hw):
    x = torch.from_numpy(np.stack([_image(*hw, s) for s in (0, 1)])).permute(0, 3, 1, 2).float()
    theirs = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    ours = tf1_bilinear(x, (299, 299))
    assert ours.shape == (2, 3, 299, 299)
    assert torch.equal(ours, theirs)  # bit-exact on CPU, not just close
    # The per-image NumPy twin used in loader workers: bit-exact as well.
    for i, image in enumerate(x.permute(0, 2, 3, 1).to(torch.uint8).numpy()):
        assert np.array_equal(tf1_bilinear_image(image, (299, 299)), theirs[i].numpy())


def test_tf1_bilinear_has_no_half_pixel_offset():
    # TF1 align_corners=False samples at out_index * in/out: output 0 is exactly input 0,
    # unlike torch's half-pixel interpolate, which blends the first two pixels.
    x = torch.tensor([[[[0.0, 100.0]]]])
    out = tf1_bilinear(x, (1, 4))
    assert out.flatten().tolist() == [0.0, 50.0, 100.0, 100.0]


def test_tf1_bilinear_rejects_uint8():
    with pytest.raises(ValueError, match="float"):
        tf1_bilinear(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.parametrize("hw", SIZES)
def test_clean_resize_equals_clean_fid(hw):
    image = _image(*hw, 3)
    theirs = make_resizer("PIL", False, "bicubic", (299, 299))(image)
    ours = clean_resize(image, (299, 299))
    assert ours.dtype == np.float32 and ours.shape == (299, 299, 3)
    assert np.array_equal(ours, theirs)


def test_clean_resize_is_not_requantised_and_is_clipped():
    # A sharp edge makes bicubic overshoot: values outside [0, 255] are clipped, and
    # fractional values stay (clean-fid's point: no uint8 rounding after the resize).
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 255
    out = clean_resize(image, (299, 299))
    assert out.min() == 0.0 and out.max() == 255.0
    assert np.any(out != np.round(out))


@pytest.mark.parametrize("mode", MODES)
def test_preprocess_gives_float_chw_299_and_pickles(mode):
    prep = pickle.loads(pickle.dumps(Preprocess(mode)))  # loader workers receive it pickled
    image = _image(64, 48, 5)
    out = prep(image)
    assert out.shape == (3, 299, 299) and out.dtype == torch.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 255.0
    if mode == "clean":
        expected = make_resizer("PIL", False, "bicubic", (299, 299))(image)
    else:
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        expected = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
        expected = expected[0].permute(1, 2, 0).numpy()
    assert np.array_equal(out.permute(1, 2, 0).numpy(), expected)


def test_normalise_maps_to_inception_range():
    out = normalise(torch.tensor([0.0, 128.0, 255.0]))
    assert out.tolist() == [-1.0, 0.0, 127 / 128]
