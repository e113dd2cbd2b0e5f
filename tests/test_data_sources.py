"""Folder and ADM .npz image sources: listing, order, hashing, lazy npz reads, bad inputs."""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest
from PIL import Image

from diffbench.data import open_images
from diffbench.data.folder import FolderSource, list_images
from diffbench.data.npz import NpzSource
from diffbench.errors import DataError
from diffbench.registry import DATASETS

RNG = np.random.default_rng(1)


def _png(path, value: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 5, 3), value, np.uint8)).save(path)
    return path


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "imgs"
    for i, rel in enumerate(["b.png", "a/z.JPG", "a/b/c.webp", "A.jpeg", "a.png", "sub2/x.png"]):
        if rel.lower().endswith((".jpg", ".jpeg")):
            rel_path = root / rel
            rel_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((4, 5, 3), i, np.uint8)).save(rel_path, "JPEG")
        elif rel.endswith(".webp"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((4, 5, 3), i, np.uint8)).save(root / rel, lossless=True)
        else:
            _png(root / rel, i)
    (root / "notes.txt").write_text("ignored")
    (root / ".hidden.png").write_bytes(b"ignored")
    return root


def test_recursive_listing_sorted_by_relative_posix_path(tree):
    rels = [p.relative_to(tree).as_posix() for p in list_images(tree)]
    # plain string order of the POSIX relative path: "." (0x2e) sorts before "/" (0x2f)
    assert rels == ["A.jpeg", "a.png", "a/b/c.webp", "a/z.JPG", "b.png", "sub2/x.png"]
    flat = [p.name for p in list_images(tree, recursive=False)]
    assert flat == ["A.jpeg", "a.png", "b.png"]


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DataError, match="nope"):
        list_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.txt").write_text("x")
    with pytest.raises(DataError, match=r"empty.*\.png"):
        FolderSource(tmp_path / "empty")


def test_folder_source_interface_and_pickle(tree):
    src = FolderSource(tree)
    assert len(src) == 6
    assert src.keys[:4] == ["A", "a", "a/b/c", "a/z"]
    assert src[2].shape == (4, 5, 3) and (src[2] == 2).all()  # lossless c.webp, written with i=2
    assert src.describe() == {"kind": "folder", "path": str(tree), "n": 6}
    clone = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(clone[4], src[4])
    assert clone.content_hash() == src.content_hash()


def test_content_hash_tracks_bytes_not_mtime(tree):
    h0 = FolderSource(tree).content_hash()
    target = tree / "b.png"
    os.utime(target, (1_000_000, 1_000_000))
    assert FolderSource(tree).content_hash() == h0
    _png(target, 99)
    h1 = FolderSource(tree).content_hash()
    assert h1 != h0
    target.rename(tree / "bb.png")  # same bytes, other name
    assert FolderSource(tree).content_hash() not in (h0, h1)


def _batch(n=7, h=6, w=5):
    return RNG.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_lazy_read_equals_np_load(tmp_path, save):
    arr = _batch()
    path = tmp_path / "b.npz"
    save(path, arr)
    src = NpzSource(path)
    assert len(src) == 7 and src.keys[0] == "000000"
    np.testing.assert_array_equal(np.stack([src[i] for i in range(len(src))]), arr)
    np.testing.assert_array_equal(src.array()[2:5], arr[2:5])
    np.testing.assert_array_equal(src.array()[-1], arr[-1])
    assert src.stats() is None
    clone = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(clone[3], arr[3])


def test_npz_uncompressed_is_memory_mapped(tmp_path):
    path = tmp_path / "b.npz"
    np.savez(path, _batch(), mu=np.zeros(3))  # arr_0 not first in the zip is fine too
    assert isinstance(NpzSource(path).array(), np.memmap)


def test_npz_reference_stats(tmp_path):
    path = tmp_path / "ref.npz"
    stats = {"mu": np.arange(3.0), "sigma": np.eye(3), "mu_s": np.ones(2), "sigma_s": np.eye(2)}
    np.savez(path, _batch(), **stats)
    src = NpzSource(path)
    got = src.stats()
    assert set(got) == set(stats)
    for k, v in stats.items():
        np.testing.assert_array_equal(got[k], v)
    assert src.describe()["stats"] == ["mu", "sigma", "mu_s", "sigma_s"]


@pytest.mark.parametrize("case,match", [
    ("missing", "not found"),
    ("notzip", "not a valid .npz"),
    ("noarr", r"no 'arr_0'.*found: other"),
    ("dtype", r"float32.*expected uint8"),
    ("ndim", r"\(6, 5, 3\).*N×H×W×3"),
    ("channels", r"\(2, 4, 5, 4\)"),
    ("empty", "no images"),
    ("object", "arr_0"),
])
def test_bad_npz_variants(tmp_path, case, match):
    path = tmp_path / f"{case}.npz"
    if case == "notzip":
        path.write_bytes(b"garbage" * 20)
    elif case == "noarr":
        np.savez(path, other=_batch())
    elif case == "dtype":
        np.savez(path, _batch().astype(np.float32))
    elif case == "ndim":
        np.savez(path, _batch()[0])
    elif case == "channels":
        np.savez(path, RNG.integers(0, 255, (2, 4, 5, 4), dtype=np.uint8))
    elif case == "empty":
        np.savez(path, np.zeros((0, 4, 5, 3), np.uint8))
    elif case == "object":
        np.savez(path, np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match=match) as exc:
        NpzSource(path)
    assert path.name in str(exc.value)


def test_truncated_npz_is_data_error(tmp_path):
    path = tmp_path / "cut.npz"
    np.savez(path, _batch(50))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.npz"):
        NpzSource(path)


def test_open_images_dispatch_and_registry(tmp_path, tree):
    assert isinstance(open_images(tree), FolderSource)
    path = tmp_path / "b.npz"
    np.savez(path, _batch())
    assert isinstance(open_images(path), NpzSource)
    with pytest.raises(DataError, match="no such"):
        open_images(tmp_path / "missing")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DataError, match="x.txt"):
        open_images(tmp_path / "x.txt")
    assert DATASETS.get("folder") is FolderSource and DATASETS.get("adm-npz") is NpzSource
    assert zipfile.is_zipfile(path)
