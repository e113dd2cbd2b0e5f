"""ADM-format ``.npz`` batches: ``arr_0`` uint8 N×H×W×3, plus ``mu``/``sigma``/``mu_s``/``sigma_s``
statistics in reference batches.

``arr_0`` is memory-mapped straight from the zip member when it is stored uncompressed (as
``np.savez`` and the ADM tools write it), so a 50K batch costs no memory up front. A compressed
member (``np.savez_compressed``) is decompressed into memory once, on first access.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

from diffbench.errors import DataError
from diffbench.fsutil import file_sha256

STATS_KEYS = ("mu", "sigma", "mu_s", "sigma_s")


def _npy_header(fp) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fp)
    return np.lib.format.read_array_header_2_0(fp)


class NpzSource:
    """An ADM-format .npz batch: images in arr_0 (uint8 N×H×W×3); reference statistics if present."""

    location_arg = "path"  # the constructor argument that receives the data location

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: .npz file not found")
        try:
            with zipfile.ZipFile(self.path) as zf:
                names = {n.removesuffix(".npy"): zf.getinfo(n) for n in zf.namelist()}
                if "arr_0" not in names:
                    raise DataError(f"{self.path}: no 'arr_0' array (found: "
                                    f"{', '.join(sorted(names)) or 'nothing'}); an ADM batch "
                                    "holds images as arr_0, uint8 N×H×W×3")
                info = names["arr_0"]
                with zf.open(info) as fp:
                    shape, fortran, dtype = _npy_header(fp)
                    header_len = fp.tell()
        except zipfile.BadZipFile as exc:
            raise DataError(f"{self.path}: not a valid .npz (zip) file; was it truncated?") from exc
        except ValueError as exc:
            raise DataError(f"{self.path}: arr_0 is not a valid .npy array ({exc})") from exc
        if dtype != np.uint8 or len(shape) != 4 or shape[3] != 3 or fortran:
            raise DataError(f"{self.path}: arr_0 is {dtype} with shape {shape}; expected uint8 "
                            "N×H×W×3 (C order)")
        if shape[0] == 0:
            raise DataError(f"{self.path}: arr_0 holds no images")
        self.shape = shape
        self.keys = [f"{i:06d}" for i in range(shape[0])]
        self._stored = info.compress_type == zipfile.ZIP_STORED
        self._offset = self._data_offset(info, header_len) if self._stored else None
        self._array: np.ndarray | None = None
        self._stat_names = [k for k in STATS_KEYS if k in names]

    def _data_offset(self, info: zipfile.ZipInfo, header_len: int) -> int:
        with open(self.path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        return info.header_offset + 30 + name_len + extra_len + header_len

    def array(self) -> np.ndarray:
        """arr_0, memory-mapped when stored uncompressed."""
        if self._array is None:
            if self._stored:
                self._array = np.memmap(self.path, dtype=np.uint8, mode="r",
                                        offset=self._offset, shape=self.shape)
            else:
                with np.load(self.path, allow_pickle=False) as data:
                    self._array = data["arr_0"]
        return self._array

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_array"] = None  # re-mapped in each loader worker
        return state

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int) -> np.ndarray:
        return np.asarray(self.array()[i])

    def stats(self) -> dict[str, np.ndarray] | None:
        """mu/sigma (pool3) and mu_s/sigma_s (sFID) when the batch carries them."""
        if not self._stat_names:
            return None
        with np.load(self.path, allow_pickle=False) as data:
            return {k: np.asarray(data[k], dtype=np.float64) for k in self._stat_names}

    def describe(self) -> dict:
        """What the results record says about this source."""
        return {"kind": "adm-npz", "path": str(self.path), "n": len(self),
                "stats": list(self._stat_names)}

    def content_hash(self) -> str:
        """sha256 of the whole file."""
        return file_sha256(self.path)
