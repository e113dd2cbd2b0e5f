"""DressCode test set as try-on items: one category or ``all`` (the union), paired or unpaired.

Layout (root): ``upper_body/``, ``lower_body/``, ``dresses/``, each with ``images/`` holding
``XXXXXX_0.jpg`` (person) and ``XXXXXX_1.jpg`` (its garment) and its own ``test_pairs_paired.txt``
/ ``test_pairs_unpaired.txt`` (``<person> <garment>`` per line). The root's copies of the pair files
(all categories) are used, filtered to the category's images as LaDI-VTON does, when a category
has none. Optional model inputs per category: ``image-densepose/`` (IDM-VTON's, named like the
person), ``agnostic-mask/XXXXXX_0_mask.png`` (or CatVTON's ``agnostic_masks/XXXXXX_0.png``),
``label_maps/XXXXXX_4.png``, ``keypoints/XXXXXX_2.json`` and ``dc_caption.txt``
(``<garment file> <caption words>``).

The FID/KID real set is the persons of the task's pairs: only ``*_0.jpg`` files. A pair file whose
person column names anything else (a ``*_1.jpg`` garment) is refused, since pointing FID at the
``images/`` folder, garments included, is the known way DressCode FIDs go wrong.
"""

from __future__ import annotations

import re
from pathlib import Path

from diffbench.data.vton_common import (
    TryOnPair,
    TryOnReader,
    optional,
    read_pairs,
    require_dir,
    resolve_all,
)
from diffbench.errors import DataError, shown

CATEGORIES = ("upper_body", "lower_body", "dresses")
_DOWNLOAD = ("request DressCode from aimagelab (github.com/aimagelab/dress-code) and pass its "
             "root with --data dresscode=PATH")
_PERSON = re.compile(r"^\d+_0\.[A-Za-z]+$")
_GARMENT = re.compile(r"^\d+_1\.[A-Za-z]+$")


def read_captions(path: Path) -> dict[str, str]:
    """Garment file → caption from ``dc_caption.txt`` (``<file> <words…>`` per line)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, _, words = line.strip().partition(" ")
        if name:
            out[name] = words.strip()
    return out


def _check_names(pairs: list[tuple[str, str]], pair_file: Path) -> None:
    for person, garment in pairs:
        if not _PERSON.match(person):
            raise DataError(f"{pair_file}: '{person}' in the person column is not a DressCode "
                            "person image (XXXXXX_0.jpg); garments (XXXXXX_1.jpg) must never "
                            "enter the ground-truth set")
        if not _GARMENT.match(garment):
            raise DataError(f"{pair_file}: '{garment}' in the garment column is not a DressCode "
                            "garment image (XXXXXX_1.jpg)")


class DressCode(TryOnReader):
    """DressCode test pairs of one category or all three, as try-on items."""

    dataset_name = "dresscode"

    def __init__(self, root: str | Path, category: str = "all", pairing: str = "paired"):
        self.root = Path(root)
        self.pairing = self._check_pairing(pairing)
        if category not in (*CATEGORIES, "all"):
            raise DataError(f"dresscode: category {shown(category)} is not one of "
                            f"{', '.join(CATEGORIES)}, all")
        self.category = category
        require_dir(self.root, "DressCode root", _DOWNLOAD)
        self.pairs, self.sources = [], {"category": category, "pairs": {}}
        for cat in CATEGORIES if category == "all" else (category,):
            self.pairs += self._category(cat)

    def _pair_file(self, cat: str) -> tuple[Path, bool]:
        name = f"test_pairs_{self.pairing}.txt"
        for path, filtered in ((self.root / cat / name, False), (self.root / name, True)):
            if path.is_file():
                return path, filtered
        raise DataError(f"{self.root / cat / name}: missing pair file (nor is there one at the "
                        f"root); DressCode ships test_pairs_paired.txt and "
                        f"test_pairs_unpaired.txt per category; {_DOWNLOAD}")

    def _category(self, cat: str) -> list[TryOnPair]:
        base = require_dir(self.root / cat, f"'{cat}' category",
                           f"the DressCode root holds {', '.join(CATEGORIES)}; {_DOWNLOAD}")
        images = require_dir(base / "images", f"{cat} images",
                             f"DressCode keeps persons (_0) and garments (_1) in images/; "
                             f"{_DOWNLOAD}")
        pair_file, filtered = self._pair_file(cat)
        pairs = read_pairs(pair_file)
        _check_names(pairs, pair_file)
        if filtered:  # the root file covers every category: keep this category's persons
            pairs = [(p, g) for p, g in pairs if (images / p).is_file()]
            if not pairs:
                raise DataError(f"{pair_file}: no person of the pair file is in {images}")
        self.sources["pairs"][cat] = str(pair_file)
        people = resolve_all(images, [p for p, _ in pairs], "person", pair_file, _DOWNLOAD)
        garment_names = [p.replace("_0.", "_1.") if self.pairing == "paired" else g
                         for p, g in pairs]
        garments = resolve_all(images, garment_names, "garment", pair_file, _DOWNLOAD)
        captions_file = base / "dc_caption.txt"
        captions = read_captions(captions_file) if captions_file.is_file() else {}
        out = []
        for person, garment in zip(people, garments, strict=True):
            ident = person.stem[:-2]
            mask = (optional(base / "agnostic-mask" / f"{person.stem}_mask.png")
                    or optional(base / "agnostic_masks" / f"{person.stem}.png"))
            out.append(TryOnPair(person, garment, cat, {
                "mask": mask,
                "densepose": optional(base / "image-densepose" / person.name),
                "label_map": optional(base / "label_maps" / f"{ident}_4.png"),
                "keypoints": optional(base / "keypoints" / f"{ident}_2.json"),
                "caption": captions.get(garment.name),
            }))
        return out
