"""The "folder" adapter: serves images generated elsewhere, matched by request key."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from diffbench.adapters.base import CONDITION_KINDS, Adapter, Request
from diffbench.errors import DataError, ImageError
from diffbench.log import logger

_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class FolderAdapter(Adapter):
    """Images `<path>/<key>.<ext>`; accepts every condition (the images already exist)."""

    conditions = frozenset(CONDITION_KINDS)

    def __init__(self, path: str, device: str = "cpu", dtype: str = "fp32", **_: object):
        super().__init__(device=device, dtype=dtype)
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"folder adapter: {self.path} is not a folder; "
                            "pass --model-arg path=DIR with the generated images")
        self.files = {p.stem: p for p in sorted(self.path.iterdir())
                      if p.is_file() and p.suffix.lower() in _EXTS}

    def check_task(self, condition: str, sampler: dict, where: str) -> None:
        """Any condition and sampler arguments: they were applied when the images were made."""
        super().check_task(condition, {}, where)

    def check_keys(self, keys: Sequence[str]) -> None:
        """Raise DataError if keys have no file; log files that no key asks for."""
        missing = [k for k in keys if k not in self.files]
        if missing:
            raise DataError(f"folder adapter: {len(missing)} of {len(keys)} images missing in "
                            f"{self.path} (first: {', '.join(missing[:5])}); expected <key>.png")
        extra = set(self.files) - set(keys)
        if extra:
            logger.info("folder adapter: %d extra files in %s ignored", len(extra), self.path)

    def generate(self, requests: Sequence[Request]) -> list[np.ndarray]:
        """The stored images of these keys, as uint8 H×W×3."""
        self.check_keys([r.key for r in requests])
        out = []
        for req in requests:
            path = self.files[req.key]
            try:
                with Image.open(path) as im:
                    out.append(np.asarray(im.convert("RGB"), dtype=np.uint8).copy())
            except OSError as exc:
                raise ImageError(f"{path}: cannot read image ({exc}); replace or remove it") from exc
        return out

    def describe(self) -> dict:
        """Name and folder for the results record."""
        return {**super().describe(), "path": str(self.path)}
