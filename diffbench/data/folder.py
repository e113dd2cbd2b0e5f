"""A folder of images (recursive), in a fixed order."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from diffbench.data.images import EXTENSIONS, load_rgb
from diffbench.errors import DataError, StorageError
from diffbench.fsutil import hash_file_into
from diffbench.log import progress


def _walk_error(exc: OSError) -> None:
    # os.walk (like pathlib's glob) would skip an unreadable folder silently: fewer images scored
    if isinstance(exc, PermissionError):
        raise StorageError(f"{exc.filename}: permission denied (cannot list the image folder); "
                           "make it readable (chmod a+rx) or remove it") from exc
    raise exc


def list_images(root: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under `root` (png/jpg/jpeg/webp, any case), sorted by relative POSIX path.

    Hidden files are skipped; folders are entered (hidden ones too), symbolic links to folders
    are not. An unreadable folder is an error, never silently skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    files = []
    for folder, dirs, names in os.walk(root, onerror=_walk_error):
        base = Path(folder)
        files += [base / n for n in names if not n.startswith(".")
                  and Path(n).suffix.lower() in EXTENSIONS and (base / n).is_file()]
        if not recursive:
            dirs.clear()
    if not files:
        raise DataError(f"{root}: no images found (looked for {', '.join(EXTENSIONS)}"
                        f"{' recursively' if recursive else ''})")
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


class FolderSource:
    """A folder of images (png/jpg/jpeg/webp, recursive), read in sorted path order."""

    location_arg = "root"  # the constructor argument that receives the data location

    def __init__(self, root: str | Path, recursive: bool = True):
        self.root = Path(root)
        self.paths = list_images(self.root, recursive)
        self.keys = [p.relative_to(self.root).with_suffix("").as_posix() for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return load_rgb(self.paths[i])

    def describe(self) -> dict:
        """What the results record says about this source."""
        return {"kind": "folder", "path": str(self.root), "n": len(self)}

    def content_hash(self) -> str:
        """sha256 over sorted relative paths, sizes and file bytes (streamed; mtime ignored)."""
        h = hashlib.sha256()
        for path in progress(self.paths, desc=f"hash {self.root}", total=len(self.paths),
                             unit="files"):
            rel = path.relative_to(self.root).as_posix().encode()
            h.update(rel + b"\0" + str(path.stat().st_size).encode() + b"\0")
            hash_file_into(h, path)
            h.update(b"\1")
        return h.hexdigest()
