"""VITON-HD and DressCode readers: items, ground truth, the FID real set, and layout errors."""

from __future__ import annotations

import pytest

from diffbench.data.base import is_task_dataset
from diffbench.data.dresscode import DressCode
from diffbench.data.vitonhd import VitonHD, read_captions
from diffbench.errors import DataError
from diffbench.refdata import open_dataset
from tests._vton import DC_IDS, VH_IDS, write_dresscode, write_vitonhd


@pytest.fixture()
def vh(tmp_path):
    return write_vitonhd(tmp_path / "vitonhd")


@pytest.fixture()
def dc(tmp_path):
    return write_dresscode(tmp_path / "dresscode")


def test_vitonhd_paired_and_unpaired_items(vh):
    paired = VitonHD(vh, pairing="paired")
    items = paired.items()
    assert is_task_dataset(paired)
    assert [it.key for it in items] == VH_IDS
    first = items[0]
    assert first.condition["person"] == str(vh / "test/image/00006_00.jpg")
    assert first.condition["garment"] == str(vh / "test/cloth/00006_00.jpg")  # its own garment
    assert first.refs == {"gt": first.condition["person"]}
    assert first.condition["mask"] == str(vh / "test/agnostic-mask/00006_00_mask.png")
    assert first.condition["densepose"] == str(vh / "test/image-densepose/00006_00.jpg")
    assert first.condition["caption"] == "short sleeve t-shirts "  # IDM-VTON's tag order
    assert first.condition["category"] == "upper_body"
    assert items[-1].condition["caption"] is None  # not tagged: the adapter falls back
    unpaired = VitonHD(vh, pairing="unpaired").items()
    assert unpaired[0].condition["garment"] == str(vh / "test/cloth/00008_00.jpg")
    assert unpaired[0].refs == {}
    ref = paired.reference_images()
    assert ref.keys == VH_IDS and len(ref) == 5
    assert ref[0].shape == (64, 48, 3)
    assert paired.describe()["missing_inputs"] == {"caption": 1}


def test_vitonhd_catvton_pair_file_name_and_open_dataset(vh):
    (vh / "test_pairs.txt").rename(vh / "test_pairs_unpaired.txt")
    ds = open_dataset("vitonhd", "vitonhd", {"pairing": "unpaired"}, {"vitonhd": str(vh)})
    assert len(ds.items()) == 5
    assert ds.describe()["sources"]["pairs"].endswith("test_pairs_unpaired.txt")


def test_vitonhd_layout_errors(vh, tmp_path):
    with pytest.raises(DataError, match="missing VITON-HD root"):
        VitonHD(tmp_path / "nowhere")
    (vh / "test" / "cloth").rename(vh / "test" / "clothes")
    with pytest.raises(DataError, match="missing garment"):
        VitonHD(vh)
    (vh / "test" / "clothes").rename(vh / "test" / "cloth")
    (vh / "test_pairs.txt").write_text("00006_00.jpg 99999_00.jpg\n")
    VitonHD(vh, pairing="paired")  # paired uses the person's own garment
    with pytest.raises(DataError, match=r"1 garment image\(s\) named in the pair file.*99999_00"):
        VitonHD(vh, pairing="unpaired")
    (vh / "test_pairs.txt").write_text("../../secret.jpg 00006_00.jpg\n")
    (tmp_path / "secret.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match="escapes"):
        VitonHD(vh)
    (vh / "test_pairs.txt").write_text("00006_00.jpg\n")
    with pytest.raises(DataError, match="expected '<person image> <garment image>'"):
        VitonHD(vh)
    (vh / "test_pairs.txt").write_text("00006_00.jpg 00008_00.jpg\n00006_00.jpg 00013_00.jpg\n")
    with pytest.raises(DataError, match="appears twice"):
        VitonHD(vh, pairing="unpaired").items()
    (vh / "test_pairs.txt").unlink()
    with pytest.raises(DataError, match="missing pair file"):
        VitonHD(vh)
    with pytest.raises(DataError, match="pairing"):
        VitonHD(vh, pairing="both")


def test_vitonhd_without_model_inputs_still_scores(tmp_path):
    root = write_vitonhd(tmp_path / "v", masks=False)
    ds = VitonHD(root)
    assert ds.items()[0].condition["mask"] is None
    assert ds.describe()["missing_inputs"]["mask"] == 5


def test_vitonhd_caption_file_errors(vh):
    (vh / "test" / "vitonhd_test_tagged.json").write_text("{not json")
    with pytest.raises(DataError, match="garment tags"):
        VitonHD(vh)
    (vh / "test" / "vitonhd_test_tagged.json").write_text('{"data": [{"file": 1}]}')
    with pytest.raises(DataError, match="tagged format"):
        read_captions(vh / "test" / "vitonhd_test_tagged.json")


def test_dresscode_categories_and_all(dc):
    upper = DressCode(dc, category="upper_body")
    items = upper.items()
    assert [it.key for it in items] == ["000001_0", "000002_0", "000003_0"]
    it = items[0]
    assert it.condition["garment"] == str(dc / "upper_body/images/000001_1.jpg")
    assert it.refs == {"gt": str(dc / "upper_body/images/000001_0.jpg")}
    assert it.condition["caption"] == "a upper_body garment"
    assert it.condition["mask"] == str(dc / "upper_body/agnostic-mask/000001_0_mask.png")
    assert it.condition["label_map"] is None  # not in this tiny layout
    every = DressCode(dc, category="all", pairing="unpaired")
    assert len(every.items()) == sum(len(v) for v in DC_IDS.values())
    assert every.items()[3].condition["garment"] == str(dc / "lower_body/images/013564_1.jpg")
    ref = every.reference_images()
    assert len(ref) == 8 and all(k.endswith("_0") for k in ref.keys)
    assert all(p.name.endswith("_0.jpg") for p in ref.paths)


def test_dresscode_root_pair_file_is_filtered_per_category(dc):
    for cat in DC_IDS:
        (dc / cat / "test_pairs_paired.txt").unlink()
    ds = DressCode(dc, category="dresses")
    assert [it.key for it in ds.items()] == ["020714_0", "020715_0", "020716_0"]
    assert ds.describe()["sources"]["pairs"]["dresses"] == str(dc / "test_pairs_paired.txt")


def test_dresscode_layout_errors(dc):
    with pytest.raises(DataError, match="category"):
        DressCode(dc, category="shoes")
    (dc / "upper_body" / "test_pairs_paired.txt").write_text("000001_1.jpg 000001_1.jpg\n")
    with pytest.raises(DataError, match="garments .* must never enter the ground-truth set"):
        DressCode(dc, category="upper_body")
    (dc / "upper_body" / "test_pairs_paired.txt").write_text("000009_0.jpg 000009_1.jpg\n")
    with pytest.raises(DataError, match="person image.*000009_0"):
        DressCode(dc, category="upper_body")
    (dc / "upper_body" / "images").rename(dc / "upper_body" / "imgs")
    with pytest.raises(DataError, match="missing upper_body images"):
        DressCode(dc, category="all")
    (dc / "upper_body").rename(dc / "upper")
    with pytest.raises(DataError, match="missing 'upper_body' category"):
        DressCode(dc)
    (dc / "test_pairs_unpaired.txt").unlink()
    (dc / "lower_body" / "test_pairs_unpaired.txt").unlink()
    with pytest.raises(DataError, match="missing pair file"):
        DressCode(dc, category="lower_body", pairing="unpaired")
