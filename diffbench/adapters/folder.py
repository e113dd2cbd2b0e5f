"""The "folder" adapter: serves images generated elsewhere, matched to requests by key or id.

Matching (``match``):

- ``stem``: the file ``<key>.<ext>`` (the default for every task that is not a try-on);
- ``vton``: the try-on scripts' convention (CatVTON/Leffa ``eval.py``): a file's id is the
  ``id_chars`` (8) characters from the first digit of its name, and a request's id is the same
  cut of its dataset item's key. ``00006_00.jpg``, ``00006_00_00008_00.png`` (StableVITON's
  ``{person}_{cloth}``) and ``013563_0.png`` all match their person's item;
- ``auto`` (default): ``vton`` for try-on requests (their condition names a person and a
  garment), ``stem`` otherwise;
- ``regex:PATTERN``: the id is the first group (or the whole match) of PATTERN in the file name.

``path`` may contain ``{field}`` placeholders filled from each request's condition, e.g.
``results/{pairing}/{category}``: try-on scripts write one flat folder per setting and category.
Missing files are an error listing how many and the first ones, before any image is written;
extra files (no request asks for them) are reported and ignored.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from diffbench.adapters.base import CONDITION_KINDS, Adapter, Request
from diffbench.errors import ConfigError, DataError, ImageError, shown
from diffbench.log import logger

_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MATCHES = ("auto", "stem", "vton")


def vton_id(name: str, chars: int = 8) -> str | None:
    """The `chars` characters from the first digit of `name` (None when it has no digit)."""
    m = re.search(r"\d", name)
    return name[m.start():m.start() + chars] if m else None


class FolderAdapter(Adapter):
    """Images made elsewhere, found by key (<key>.<ext>) or by the try-on scripts' id."""

    conditions = frozenset(CONDITION_KINDS)

    def __init__(self, path: str, match: str = "auto", id_chars: int = 8, device: str = "cpu",
                 dtype: str = "fp32", **_: object):
        super().__init__(device=device, dtype=dtype)
        self.template = str(path)
        self.fields = [f for _, f, _, _ in string.Formatter().parse(self.template) if f]
        if match not in MATCHES and not match.startswith("regex:"):
            raise ConfigError(f"folder adapter: match {shown(match)} is not one of "
                              f"{', '.join(MATCHES)} or regex:PATTERN")
        self.match, self.id_chars = match, int(id_chars)
        self._regex = re.compile(match[len("regex:"):]) if match.startswith("regex:") else None
        self._index: dict[tuple[Path, str], dict[str, Path | None]] = {}
        self._ambiguous: dict[tuple[Path, str, str], list[str]] = {}
        if not self.fields and not Path(self.template).is_dir():
            raise DataError(f"folder adapter: {self.template} is not a folder; "
                            "pass --model-arg path=DIR with the generated images")
        self.path = Path(self.template)

    @staticmethod
    def _files(folder: Path) -> dict[str, Path]:
        return {p.stem: p for p in sorted(folder.iterdir())
                if p.is_file() and p.suffix.lower() in _EXTS} if folder.is_dir() else {}

    def check_task(self, condition: str, sampler: dict, where: str) -> None:
        """Any condition and sampler arguments: they were applied when the images were made."""
        super().check_task(condition, {}, where)

    def _mode(self, req: Request) -> str:
        if self._regex is not None:
            return "regex"
        tryon = "person" in req.condition and "garment" in req.condition
        return ("vton" if tryon else "stem") if self.match == "auto" else self.match

    def _id(self, name: str, mode: str) -> str | None:
        if mode == "stem":
            return Path(name).stem
        if mode == "vton":
            return vton_id(name, self.id_chars)
        m = self._regex.search(name)
        return (m.group(1) if m.groups() else m.group(0)) if m else None

    def _folder(self, req: Request) -> Path:
        if not self.fields:
            return self.path
        try:
            return Path(self.template.format(**{f: req.condition[f] for f in self.fields}))
        except KeyError as exc:
            raise ConfigError(f"folder adapter: path {shown(self.template)} uses {{{exc.args[0]}}}, "
                              f"which request '{req.key}' has not (condition fields: "
                              f"{', '.join(sorted(req.condition)) or 'none'})") from None

    def _by_id(self, folder: Path, mode: str) -> dict[str, Path]:
        """id -> file in `folder`; ids shared by several files map to None (ambiguous)."""
        if (folder, mode) not in self._index:
            index: dict[str, Path | None] = {}
            for stem, p in self._files(folder).items():
                ident = self._id(p.name, mode) if mode != "stem" else stem
                if ident is None:
                    continue
                if ident in index:
                    self._ambiguous.setdefault((folder, mode, ident), [index[ident].name]
                                               if index[ident] else []).append(p.name)
                    index[ident] = None
                else:
                    index[ident] = p
            self._index[(folder, mode)] = index
        return self._index[(folder, mode)]

    def _request_id(self, req: Request, mode: str) -> str:
        if mode == "stem":
            return req.key
        return self._id(req.item or req.key, mode) or req.key

    def find(self, req: Request) -> Path | None:
        """The file that serves `req`, or None; DataError when several files share its id."""
        mode, folder = self._mode(req), self._folder(req)
        ident = self._request_id(req, mode)
        index = self._by_id(folder, mode)
        if ident in index and index[ident] is None:
            names = self._ambiguous[(folder, mode, ident)]
            raise DataError(f"folder adapter: {', '.join(names[:4])} in {folder} all have id "
                            f"'{ident}' (item {req.key}); keep one image per item or set "
                            "--model-arg match=stem")
        return index.get(ident)

    def check_requests(self, requests: Sequence[Request]) -> None:
        """Raise DataError if requests have no file; report files that no request asks for."""
        missing = [r for r in requests if self.find(r) is None]
        if missing:
            folders = sorted({str(self._folder(r)) for r in missing})
            how = ("<key>.png" if self._mode(missing[0]) == "stem" else
                   f"a file whose id ({self.match} match) equals the item's")
            raise DataError(f"folder adapter: {len(missing)} of {len(requests)} images missing in "
                            f"{', '.join(folders)} (first: "
                            f"{', '.join(r.key for r in missing[:5])}); expected {how}")
        used: dict[Path, set[Path]] = {}
        for r in requests:
            used.setdefault(self._folder(r), set()).add(self.find(r))
        for folder, files in used.items():
            extra = sorted(p.name for p in set(self._files(folder).values()) - files)
            if extra:
                logger.warning("folder adapter: %d files in %s match no request and are ignored "
                               "(first: %s)", len(extra), folder, ", ".join(extra[:5]))

    def check_keys(self, keys: Sequence[Request | str]) -> None:
        """`check_requests` for bare keys: a key matches its stem or, in auto mode, its id.

        Callers that have the requests should call `check_requests` (conditions decide the
        matching and fill a templated path); with bare keys a templated path cannot be checked
        up front and each batch is checked when it is served.
        """
        if all(isinstance(k, Request) for k in keys):
            self.check_requests(list(keys))  # type: ignore[arg-type]
            return
        if self.fields:
            return
        modes = ["stem", "vton"] if self.match == "auto" else [self._mode(Request("", 0))]
        reqs = []
        for key in keys:
            key = key.key if isinstance(key, Request) else key
            found = next((m for m in modes if self._request_id(Request(key, 0), m)
                          in self._by_id(self.path, m)), None)  # stem first
            reqs.append(Request(key, 0, {"person": "", "garment": ""} if found == "vton"
                                else {}))
        self.check_requests(reqs)

    def generate(self, requests: Sequence[Request]) -> list[np.ndarray]:
        """The stored images of these requests, as uint8 H×W×3."""
        out = []
        for req in requests:
            path = self.find(req)
            if path is None:
                self.check_requests([req])
            try:
                with Image.open(path) as im:
                    out.append(np.asarray(im.convert("RGB"), dtype=np.uint8).copy())
            except OSError as exc:
                raise ImageError(f"{path}: cannot read image ({exc}); replace or remove it") from exc
        return out

    def describe(self) -> dict:
        """Name, folder and matching rule for the results record."""
        return {**super().describe(), "path": self.template, "match": self.match,
                "id_chars": self.id_chars}
