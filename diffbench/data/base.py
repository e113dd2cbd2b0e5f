"""What dataset readers give the rest of diffbench: image sources and task items.

Two kinds of readers live in the ``datasets`` registry:

- an **image source** (folder, ADM ``.npz``, sklearn digits, an explicit file list): ``len``,
  ``source[i]`` → uint8 H×W×3, ``keys``, ``describe()`` and ``content_hash()``. Distribution metrics
  read reference images from one.
- a **task dataset** (VITON-HD, DressCode, DreamBench, …): ``items()`` → `Item`s, the conditions
  a model is asked to generate for, each with the references its metrics compare against, and
  ``reference_images()`` → the image source of real images for distribution metrics (or None).

Every reader class declares which constructor argument receives the dataset's location with
``location_arg`` (``None`` when it needs no location, as the offline digits);
`diffbench.refdata.open_dataset` resolves a suite's location name (``--data``, environment, user
config) and builds the reader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, runtime_checkable
from typing import Protocol as Interface  # not a diffbench.protocols.Protocol

import numpy as np

from diffbench.data.images import load_rgb
from diffbench.errors import DataError, shown
from diffbench.fsutil import hash_file_into
from diffbench.log import progress
from diffbench.names import SAFE_NAME, check_name

KEY_PATTERN = SAFE_NAME  # the one file-name pattern (diffbench.names)


def check_key(key: str, where: str) -> str:
    """A sample/item key is a file stem (`diffbench.names`); refuse anything else."""
    return check_name(key, f"{where}: key", DataError)


@dataclass(frozen=True)
class Item:
    """One condition of a task dataset: what the adapter receives and what metrics compare with.

    ``condition`` and ``refs`` hold JSON-able values only (numbers, strings, absolute paths as
    strings, lists and dicts of them): the condition is written to the sample manifest.
    """

    key: str
    condition: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ImageSource(Interface):
    """An ordered set of images."""

    keys: list[str]

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...

    def content_hash(self) -> str: ...


@runtime_checkable
class TaskDataset(Interface):
    """A dataset that defines the conditions of a generate task."""

    def items(self) -> list[Item]: ...

    def reference_images(self) -> ImageSource | None: ...

    def describe(self) -> dict[str, Any]: ...


def is_task_dataset(obj: Any) -> bool:
    """True for readers that define items (`TaskDataset`), False for plain image sources."""
    return isinstance(obj, TaskDataset)


class FileListSource:
    """Images from an explicit list of files (keys given or taken from the file stems)."""

    def __init__(self, paths: Sequence[str | Path], keys: Sequence[str] | None = None,
                 root: str | Path | None = None, kind: str = "files"):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise DataError(f"{root or 'file list'}: no images in the list")
        self.keys = list(keys) if keys is not None else [p.stem for p in self.paths]
        if len(self.keys) != len(self.paths):
            raise ValueError("FileListSource: one key per path")
        self.root = Path(root) if root is not None else None
        self.kind = kind

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return load_rgb(self.paths[i])

    def describe(self) -> dict[str, Any]:
        """What the results record says about this source."""
        return {"kind": self.kind, "path": str(self.root) if self.root else None, "n": len(self)}

    def _hashed_names(self) -> list[str]:
        """What `content_hash` hashes beside each file: its key."""
        return self.keys

    def content_hash(self) -> str:
        """sha256 over keys, sizes and bytes of the files, in order."""
        h = hashlib.sha256()
        pairs = zip(self._hashed_names(), self.paths, strict=True)
        for name, path in progress(pairs, desc=f"hash {self.root or self.kind}",
                                   total=len(self.paths), unit="files"):
            h.update(name.encode() + b"\0" + str(path.stat().st_size).encode() + b"\0")
            hash_file_into(h, path)
            h.update(b"\1")
        return h.hexdigest()


def inside(root: Path, relative: str, where: str) -> Path:
    """``root / relative``, refused when it escapes `root` (paths read from data files)."""
    root_resolved = root.resolve()
    path = (root_resolved / relative).resolve()
    if path != root_resolved and root_resolved not in path.parents:
        raise DataError(f"{where}: path '{relative}' escapes the dataset root {root}; "
                        "data files may only name files inside their dataset")
    return path


def under_root(root: Path, relative: Any, what: str) -> Path:
    """``root / relative`` for a reader argument naming a file or folder of the dataset.

    Refused (without reading anything) when it is not a relative path inside the root: absolute,
    with a ``..`` part, or resolving (through symbolic links) to a file outside the root. The
    message never quotes the refused file's content.
    """
    parts = PurePosixPath(relative).parts if isinstance(relative, str) else ()
    if not parts or relative.startswith(("/", "\\")) or ".." in parts or "\\" in relative \
            or ":" in parts[0]:
        raise DataError(f"{what} {shown(relative)}: must be a path relative to the dataset root "
                        f"{root}, without '..'; a suite may only name files inside its dataset")
    real_root, real = Path(root).resolve(), (Path(root) / relative).resolve()
    if real != real_root and real_root not in real.parents:
        raise DataError(f"{what} '{relative}': resolves (through a symbolic link) to {real}, "
                        f"outside the dataset root {root}; a suite may only name files inside "
                        "its dataset: copy the file into it")
    return root / relative
