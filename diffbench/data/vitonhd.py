"""VITON-HD ("zalando-hd-resized") test set as try-on items, paired or unpaired.

Layout (root): ``test_pairs.txt`` (``<person>.jpg <garment>.jpg`` per line; CatVTON renames it
``test_pairs_unpaired.txt``, also accepted) and ``test/`` with ``image/`` (persons ``<id>_00.jpg``),
``cloth/`` (garments, same id as their wearer), and for models that inpaint: ``agnostic-mask/``
(binary masks ``<id>_00_mask.png``), ``image-densepose/`` (named like the person) and
``vitonhd_test_tagged.json`` (IDM-VTON's garment tags, for captions).

Paired: each person of the pair file with its own garment (``cloth/<person name>``); the ground
truth is the person image. Unpaired: the pair file's garment; no ground truth. The FID/KID real
set is the pair file's persons (all 2,032 ``test/image`` files in the official split).
"""

from __future__ import annotations

import json
from pathlib import Path

from diffbench.data.base import under_root
from diffbench.data.vton_common import (
    TryOnPair,
    TryOnReader,
    optional,
    read_pairs,
    require_dir,
    resolve_all,
)
from diffbench.errors import DataError, shown

_DOWNLOAD = ("download VITON-HD (zalando-hd-resized) from the link in the shadow2496/VITON-HD "
             "README and pass its root with --data vitonhd=PATH")
TAG_ORDER = ("sleeveLength", "neckLine", "item")


def read_captions(path: Path) -> dict[str, str]:
    """Garment file → caption words from IDM-VTON's ``vitonhd_<split>_tagged.json``.

    The caption joins the categories of the tags sleeveLength, neckLine and item, in that order,
    each followed by a space (the string IDM-VTON's prompts append).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the garment tags ({exc})") from exc
    out: dict[str, str] = {}
    try:
        for entries in data.values():
            for entry in entries:
                words = [tag["tag_category"] for name in TAG_ORDER for tag in entry["tag_info"]
                         if tag.get("tag_name") == name and tag.get("tag_category") is not None]
                out[entry["file_name"]] = "".join(f"{w} " for w in words)
    except (AttributeError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not in IDM-VTON's tagged format ({shown(exc)})") from exc
    return out


class VitonHD(TryOnReader):
    """VITON-HD test pairs as try-on items (paired: own garment + ground truth; unpaired)."""

    dataset_name = "vitonhd"

    def __init__(self, root: str | Path, pairing: str = "paired", split: str = "test",
                 pairs_file: str | None = None):
        self.root = Path(root)
        self.pairing = self._check_pairing(pairing)
        require_dir(self.root, "VITON-HD root", _DOWNLOAD)
        base = require_dir(under_root(self.root, split, "vitonhd: split"), f"'{split}'",
                           f"the VITON-HD root holds train/ and test/; {_DOWNLOAD}")
        pair_file = self._pair_file(split, pairs_file)
        images = require_dir(base / "image", "person image", _DOWNLOAD)
        cloth = require_dir(base / "cloth", "garment (cloth)", _DOWNLOAD)
        pairs = read_pairs(pair_file)
        people = resolve_all(images, [p for p, _ in pairs], "person", pair_file, _DOWNLOAD)
        garment_names = [p if self.pairing == "paired" else g for p, g in pairs]
        garments = resolve_all(cloth, garment_names, "garment", pair_file, _DOWNLOAD)
        tags = base / f"vitonhd_{split}_tagged.json"
        captions = read_captions(tags) if tags.is_file() else {}
        self.sources = {"pairs": str(pair_file), "split": split,
                        "captions": str(tags) if tags.is_file() else None,
                        "mask_dir": str(base / "agnostic-mask"),
                        "densepose_dir": str(base / "image-densepose")}
        self.pairs = [
            TryOnPair(person, garment, "upper_body", {
                "mask": optional(base / "agnostic-mask" / f"{person.stem}_mask.png"),
                "densepose": optional(base / "image-densepose" / person.name),
                "caption": captions.get(garment.name) if captions else None,
            })
            for person, garment in zip(people, garments, strict=True)]

    def _pair_file(self, split: str, pairs_file: str | None) -> Path:
        names = [pairs_file] if pairs_file else [f"{split}_pairs.txt",
                                                 f"{split}_pairs_unpaired.txt"]
        for name in names:
            path = under_root(self.root, name, "vitonhd: pairs_file")
            if path.is_file():
                return path
        raise DataError(f"{self.root / names[0]}: missing pair file; VITON-HD ships "
                        f"{split}_pairs.txt at its root (CatVTON's copy is named "
                        f"{split}_pairs_unpaired.txt); {_DOWNLOAD}")
