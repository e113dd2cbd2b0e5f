"""What the VITON-HD and DressCode readers share: pair files, layout checks, try-on items.

A try-on item's key is its person image's stem (``00006_00``, ``013563_0``); its condition holds
absolute paths of the person, the garment, the inpainting mask, the DensePose image, the garment
caption and the category; in the paired setting its refs hold the ground truth (``gt``: the person
image itself). The real images of FID/KID are the persons of the task's pairs (`reference_images`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffbench.data.base import FileListSource, Item, check_key, inside
from diffbench.errors import DataError, shown

PAIRINGS = ("paired", "unpaired")

# How users usually get the files a try-on model needs besides the official download.
MODEL_INPUT_HELP = {
    "agnostic-mask": "the binary inpainting masks <id>_mask.png are not in the original VITON-HD "
                     "download (IDM-VTON issues #32/#71); get the agnostic-mask folder the "
                     "IDM-VTON/StableVITON/CatVTON READMEs link, and do not use the grey "
                     "agnostic-v3.2 images instead (IDM-VTON issue #185)",
    "image-densepose": "IDM-VTON's DensePose renderings (image-densepose/, named like the person "
                       "image) are provided by the IDM-VTON authors, not by the dataset",
    "dresscode-mask": "IDM-VTON's inference_dc.py builds the DressCode mask on the fly from "
                      "label_maps/ and keypoints/; diffbench does not re-implement that code "
                      "(CC BY-NC-SA). Save IDM-VTON's masks as <category>/agnostic-mask/"
                      "<id>_0_mask.png (or CatVTON's preprocess_agnostic_mask.py output as "
                      "<category>/agnostic_masks/<id>_0.png)",
}


def require_dir(path: Path, what: str, hint: str) -> Path:
    """`path` if it is a folder, else a DataError naming it and how it is usually obtained."""
    if not path.is_dir():
        raise DataError(f"{path}: missing {what} folder; {hint}")
    return path


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """``person garment`` lines of a pair file (blank lines skipped), refusing other shapes."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the pair file ({exc})") from exc
    pairs = []
    for i, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(f"{path}:{i}: expected '<person image> <garment image>', got "
                            f"{shown(line.strip())}")
        pairs.append((parts[0], parts[1]))
    if not pairs:
        raise DataError(f"{path}: the pair file lists no pairs")
    return pairs


def resolve_all(folder: Path, names: Iterable[str], what: str, pair_file: Path,
                hint: str) -> list[Path]:
    """Each name as a file inside `folder` (refused if it escapes it); one error for the missing."""
    paths, missing = [], []
    for name in names:
        path = inside(folder, name, f"{pair_file}")
        paths.append(path)
        if not path.is_file():
            missing.append(name)
    if missing:
        raise DataError(f"{pair_file}: {len(missing)} {what} image(s) named in the pair file are "
                        f"not in {folder} (first: {', '.join(missing[:3])}); {hint}")
    return paths


def optional(path: Path) -> str | None:
    """The absolute path as a string when the file exists, else None."""
    return str(path) if path.is_file() else None


@dataclass
class TryOnPair:
    """One person with the garment to put on, and the optional model inputs found for it."""

    person: Path
    garment: Path
    category: str
    extra: dict[str, Any] = field(default_factory=dict)


class TryOnReader:
    """Items, real images and description of a try-on test set (subclasses build ``pairs``)."""

    dataset_name = "tryon"
    location_arg = "root"

    root: Path
    pairing: str
    pairs: list[TryOnPair]
    sources: dict[str, Any]

    def _check_pairing(self, pairing: str) -> str:
        if pairing not in PAIRINGS:
            raise DataError(f"{self.dataset_name}: pairing {shown(pairing)} is not one of "
                            f"{', '.join(PAIRINGS)}")
        return pairing

    def items(self) -> list[Item]:
        """One item per person: its condition (absolute paths) and, if paired, its ground truth."""
        out, seen = [], {}
        for p in self.pairs:
            key = check_key(p.person.stem, f"{self.dataset_name} person {p.person}")
            if key in seen:
                raise DataError(f"{self.dataset_name}: person '{key}' appears twice ({seen[key]} "
                                f"and {p.person}); item keys must be unique per task")
            seen[key] = p.person
            cond = {"dataset": self.dataset_name, "pairing": self.pairing,
                    "category": p.category, "person": str(p.person), "garment": str(p.garment),
                    **p.extra}
            refs = {"gt": str(p.person)} if self.pairing == "paired" else {}
            out.append(Item(key, cond, refs))
        return out

    def reference_images(self) -> FileListSource:
        """The real person images of this task's pairs, in key order (FID/KID's real side)."""
        persons = sorted({p.person for p in self.pairs}, key=lambda q: (q.stem, str(q)))
        return FileListSource(persons, [p.stem for p in persons], root=self.root,
                              kind=f"{self.dataset_name}-persons")

    def missing_inputs(self) -> dict[str, int]:
        """How many items lack each optional model input (mask, densepose, caption)."""
        return dict(Counter(name for p in self.pairs for name, value in p.extra.items()
                            if value is None))

    def describe(self) -> dict[str, Any]:
        """What the results record says about this dataset."""
        return {"kind": self.dataset_name, "path": str(self.root), "pairing": self.pairing,
                "n": len(self.pairs), "persons": len({p.person for p in self.pairs}),
                "sources": self.sources, "missing_inputs": self.missing_inputs()}
