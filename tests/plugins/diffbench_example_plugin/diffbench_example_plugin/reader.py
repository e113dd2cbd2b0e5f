"""A dataset reader: images sorted into one folder per class label, as a task dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffbench.data.base import FileListSource, Item
from diffbench.errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg")


class ClassFolders:
    """Images in ``ROOT/<label>/`` (label an integer): one item per class, all images as reals."""

    location_arg = "root"  # the constructor argument that receives the --data location

    def __init__(self, root: str | Path, classes: list[int] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: not a folder; pass --data NAME=PATH to a folder with "
                            "one subfolder per class label (0/, 1/, ...)")
        folders = sorted((p for p in self.root.iterdir() if p.is_dir() and p.name.isdigit()),
                         key=lambda p: int(p.name))
        self.folders = [p for p in folders if classes is None or int(p.name) in classes]
        if not self.folders:
            raise DataError(f"{self.root}: no class folders (0/, 1/, ...) found")

    def items(self) -> list[Item]:
        """One item per class: the adapter is asked for images of that class."""
        return [Item(f"class{int(f.name):03d}", {"class": int(f.name)}) for f in self.folders]

    def _files(self) -> list[Path]:
        return [p for f in self.folders for p in sorted(f.iterdir())
                if p.suffix.lower() in SUFFIXES]

    def reference_images(self) -> FileListSource:
        """Every image of the selected classes: the reference set of distribution metrics."""
        files = self._files()
        return FileListSource(files, [f"{p.parent.name}-{p.stem}" for p in files], self.root,
                              kind="class-folders")

    def describe(self) -> dict[str, Any]:
        """What the results record says about the data."""
        return {"kind": "class-folders", "root": str(self.root), "classes": len(self.folders),
                "images": len(self._files())}
