"""A folder of images (recursive), in a fixed order."""

from __future__ import annotations

import os
from pathlib import Path

from diffbench.data.base import FileListSource
from diffbench.data.images import EXTENSIONS
from diffbench.errors import DataError, StorageError


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


class FolderSource(FileListSource):
    """A folder of images (png/jpg/jpeg/webp, recursive), read in sorted path order."""

    location_arg = "root"  # the constructor argument that receives the data location

    def __init__(self, root: str | Path, recursive: bool = True):
        root = Path(root)
        paths = list_images(root, recursive)
        super().__init__(paths, [p.relative_to(root).with_suffix("").as_posix() for p in paths],
                         root, "folder")

    def _hashed_names(self) -> list[str]:
        """Relative paths with their suffix (the content hash covers paths, sizes and bytes,
        streamed; mtime ignored)."""
        return [p.relative_to(self.root).as_posix() for p in self.paths]
