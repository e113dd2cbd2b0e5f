"""Image decoding: every PIL mode to the documented RGB value; corrupt and truncated files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from diffbench.data.images import load_rgb, to_rgb
from diffbench.errors import ImageError

RNG = np.random.default_rng(0)
RGBA = RNG.integers(0, 256, (8, 10, 4), dtype=np.uint8)


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_pa_mode_matches_pil_convert():
    img = Image.fromarray(RGBA, "RGBA").convert("P").convert("PA")  # PNG cannot store PA
    assert img.mode == "PA"
    np.testing.assert_array_equal(to_rgb(img), np.asarray(img.convert("RGB")))


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "RGB"])
def test_png_modes_match_pil_convert(tmp_path, mode):
    img = Image.fromarray(RGBA, "RGBA").convert(mode)
    path = _save(img, tmp_path / f"x_{mode}.png")
    got = load_rgb(path)
    with Image.open(path) as ref:
        expected = np.asarray(ref.convert("RGB"))
    assert got.dtype == np.uint8 and got.shape == (8, 10, 3)
    np.testing.assert_array_equal(got, expected)


def test_rgba_alpha_is_dropped_not_composited(tmp_path):
    arr = np.zeros((4, 4, 4), np.uint8)
    arr[..., 0] = 200  # red, fully transparent: compositing on white would give 255s
    path = _save(Image.fromarray(arr, "RGBA"), tmp_path / "a.png")
    got = load_rgb(path)
    assert (got[..., 0] == 200).all() and (got[..., 1:] == 0).all()


def test_cmyk_jpeg_matches_pil_convert(tmp_path):
    img = Image.fromarray(RGBA[..., :3], "RGB").convert("CMYK")
    path = _save(img, tmp_path / "c.jpg", quality=95)
    with Image.open(path) as ref:
        assert ref.mode == "CMYK"
        expected = np.asarray(ref.convert("RGB"))
    np.testing.assert_array_equal(load_rgb(path), expected)


def test_16bit_grey_png_scaled_by_257_rounded(tmp_path):
    values = np.array([[0, 128, 129, 257], [32896, 65279, 65534, 65535]], np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "g16.png")
    with Image.open(path) as ref:
        assert ref.mode in ("I;16", "I")
    got = load_rgb(path)
    expected = np.array([[0, 0, 1, 1], [128, 254, 255, 255]], np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], expected)


def test_int32_and_float_modes_clipped_then_scaled(tmp_path):
    ints = np.array([[-5, 0, 257, 70000]], np.int32)
    floats = np.array([[-1.0, 128.4, 257.0, 1e6]], np.float32)
    for arr, name in ((ints, "i.tif"), (floats, "f.tif")):
        path = _save(Image.fromarray(arr), tmp_path / name)
        got = load_rgb(path)
        np.testing.assert_array_equal(got[..., 1], np.array([[0, 0, 1, 255]], np.uint8))


def test_exif_orientation_not_applied(tmp_path):
    img = Image.fromarray(RGBA[..., :3], "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW" — peers ignore it, so do we
    path = _save(img, tmp_path / "o.png", exif=exif)
    assert load_rgb(path).shape == (8, 10, 3)


def test_corrupt_bytes_raise_image_error_with_path(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"not an image at all" * 10)
    with pytest.raises(ImageError, match="bad.png") as exc:
        load_rgb(path)
    assert "re-export" in str(exc.value)


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
def test_truncated_files_raise_image_error(tmp_path, fmt, ext):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    big = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, fmt)
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match=f"cut.{ext}"):
        load_rgb(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_missing_file_raises_image_error(tmp_path):
    with pytest.raises(ImageError, match="gone.png"):
        load_rgb(tmp_path / "gone.png")
