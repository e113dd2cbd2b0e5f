"""`diffbench.data.vton_reals`: the ground truth prepared in memory exactly as CatVTON's eval.py
leaves it on disk, the per-file decision, the cache key and the settings' errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffbench.data.base import FileListSource
from diffbench.data.images import load_rgb
from diffbench.data.vton_reals import PreparedReals, prediction_size, prepare_gt, reals_for
from diffbench.errors import ConfigError, DataError
from tests._vton import smooth
from tests.test_vton_reals import evalpy_copy


def write_gt(folder: Path) -> Path:
    """Ground-truth files of the modes and formats a user may have."""
    folder.mkdir(parents=True)
    rs = np.random.RandomState(0)
    smooth(rs).save(folder / "00006_00.jpg", quality=95)
    smooth(rs).convert("L").save(folder / "00008_00.jpg", quality=90)
    smooth(rs).save(folder / "00013_00.png")
    rgba = smooth(rs).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "00017_00.png")
    smooth(rs, size=(30, 40)).save(folder / "00034_00.jpeg")
    return folder


def test_prepare_gt_equals_evalpy_copy_read_by_cleanfid(tmp_path):
    gt = write_gt(tmp_path / "image")
    copy = evalpy_copy(gt, 32)
    for name in sorted(p.name for p in gt.iterdir()):
        want = np.asarray(Image.open(copy / name).convert("RGB"))  # clean-fid's read
        got = prepare_gt(gt / name, 32, 75)
        assert got.dtype == np.uint8 and np.array_equal(got, want), name
    # 75 is PIL's default JPEG quality: the same bytes with and without it
    img = Image.open(gt / "00006_00.jpg")
    default, explicit = io.BytesIO(), io.BytesIO()
    img.save(default, format="JPEG")
    img.save(explicit, format="JPEG", quality=75)
    assert default.getvalue() == explicit.getvalue()
    # without a re-save: the LANCZOS pixels only (differ from the JPEG copy)
    plain = prepare_gt(gt / "00006_00.jpg", 32, None)
    lanczos = np.asarray(Image.open(gt / "00006_00.jpg").resize((24, 32), Image.LANCZOS))
    assert np.array_equal(plain, lanczos)
    assert not np.array_equal(plain, prepare_gt(gt / "00006_00.jpg", 32, 75))


def test_prepared_reals_decide_per_file_and_describe(tmp_path):
    gt = tmp_path / "image"
    gt.mkdir()
    rs = np.random.RandomState(1)
    smooth(rs).save(gt / "a.jpg", quality=95)  # 48x64
    smooth(rs, size=(24, 32)).save(gt / "b.jpg", quality=95)  # already at the height
    base = FileListSource([gt / "a.jpg", gt / "b.jpg"], root=tmp_path, kind="vitonhd-persons")
    reals = PreparedReals(base, 32, 75, "CatVTON eval.py copy_resize_gt")
    assert np.array_equal(reals[0], prepare_gt(gt / "a.jpg", 32, 75))
    assert np.array_equal(reals[1], load_rgb(gt / "b.jpg"))  # untouched, not re-encoded
    info = reals.describe()
    assert info["kind"] == "vitonhd-persons" and info["n"] == 2
    assert info["prepared"]["resized"] == 1 and info["prepared"]["sizes_wxh"] == {"24x32": 2}
    assert info["preparation"] == ("ground truth resized to 24x32 (width x height) LANCZOS, "
                                   "re-saved with PIL's defaults for the extension (JPEG quality "
                                   "75) (CatVTON eval.py copy_resize_gt)")
    as_is = PreparedReals(base, None, None, "LaDI")
    assert as_is.describe()["preparation"] == "ground truth as is, 48x64, 24x32 (width x height) (LaDI)"
    assert np.array_equal(as_is[0], load_rgb(gt / "a.jpg"))


def test_cache_key_covers_bytes_and_settings(tmp_path):
    gt = tmp_path / "image"
    gt.mkdir()
    smooth(np.random.RandomState(2)).save(gt / "a.jpg", quality=95)
    base = FileListSource([gt / "a.jpg"])
    key = PreparedReals(base, 32, 75, "s").content_hash()
    assert PreparedReals(base, None, None, "s").content_hash() == base.content_hash()
    others = {PreparedReals(base, 16, 75, "s").content_hash(),
              PreparedReals(base, 32, 95, "s").content_hash(),
              PreparedReals(base, 32, None, "s").content_hash(), base.content_hash()}
    assert key not in others and len(others) == 4
    smooth(np.random.RandomState(3)).save(gt / "a.jpg", quality=95)  # same name, new bytes
    assert PreparedReals(FileListSource([gt / "a.jpg"]), 32, 75, "s").content_hash() != key


def test_reals_for_settings_and_mixed_sizes(tmp_path):
    gt = tmp_path / "image"
    gt.mkdir()
    smooth(np.random.RandomState(4)).save(gt / "a.jpg")
    base = FileListSource([gt / "a.jpg"])
    made = tmp_path / "samples"
    made.mkdir()
    rs = np.random.RandomState(5)
    names = [f"{i:05d}_00.png" for i in range(6)]
    for i, name in enumerate(names):
        smooth(rs, size=(24, 32) if i < 4 else (48, 64)).save(made / name)
    paths = [made / n for n in names]
    assert reals_for(base, None, paths, "task t", "x") is base
    assert reals_for(base, {"gt_resize": "none"}, paths, "task t", "ladi").height is None
    same = reals_for(base, {"gt_resize": "lanczos-height", "gt_jpeg_quality": 75}, paths[:4],
                     "task t", "catvton")
    assert same.height == 32 and same.jpeg_quality == 75
    with pytest.raises(DataError) as exc:
        reals_for(base, {"gt_resize": "lanczos-height"}, paths, "task paired", "catvton")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{made}: task paired has generated images of 2 "
                                              "sizes")
    assert "24x32: 4 (e.g. 00000_00.png, 00001_00.png, 00002_00.png)" in msg
    assert "48x64: 2 (e.g. 00004_00.png, 00005_00.png)" in msg
    assert "protocol catvton" in msg
    assert prediction_size([*paths[:4], made / "gone.png"], "t", "c") == (24, 32)
    with pytest.raises(ConfigError, match="unknown settings"):
        reals_for(base, {"height": 3}, paths, "t", "c")
    with pytest.raises(ConfigError, match="gt_resize 'bicubic'"):
        reals_for(base, {"gt_resize": "bicubic"}, paths, "t", "c")
