"""Image sources: folders, ADM .npz batches and the offline digits set. They yield images and never score."""

from __future__ import annotations

from pathlib import Path


def open_images(path: str | Path):
    """A FolderSource for a folder, an NpzSource for an .npz file."""
    from diffbench.data.folder import FolderSource
    from diffbench.data.npz import NpzSource
    from diffbench.errors import DataError

    path = Path(path)
    if path.is_dir():
        return FolderSource(path)
    if path.suffix == ".npz":
        return NpzSource(path)
    if not path.exists():
        raise DataError(f"{path}: no such folder or file")
    raise DataError(f"{path}: expected a folder of images or an ADM-format .npz batch")
