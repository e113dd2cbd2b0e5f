"""The FID/KID real set of a try-on protocol, prepared as the protocol's script prepares it.

CatVTON's ``eval.py`` (also Leffa's VtonEval): when the first prediction's height H differs from
the first ground truth's, ``copy_resize_gt`` writes every ground-truth file LANCZOS-resized to
``(int(w·H/h), H)`` into a sibling folder ``<gt>_<H>`` with ``Image.save(path)``, i.e. PIL's
defaults for the file's extension (``.jpg``: JPEG quality 75), and from then on clean-fid reads
that copy for FID and KID as well as SSIM/LPIPS. `prepare_gt` makes the same pixels in memory;
`reals_for` wraps a dataset's real images in `PreparedReals` so FID/KID see them. Nothing is
written beside the dataset: the features of the prepared set are cached like any reference (in
``$DIFFBENCH_HOME``), keyed by the original files' bytes and the preparation settings, PIL's and
libjpeg's versions included (`PreparedReals.content_hash`).

Two of eval.py's edges are not inherited: the target height is the one height of all predictions
(`prediction_size` refuses mixed sizes, naming files; eval.py takes it from whichever file
``os.listdir`` returns first), and each ground-truth file is prepared only when its own height
differs (eval.py decides once, from its first file, and reuses an existing ``<gt>_<H>`` folder
without checking it).

Protocol settings (``params["reals"]``): ``gt_resize`` ``lanczos-height`` (CatVTON) or ``none``
(the files as they are: LaDI-VTON's custom clean-fid statistics), ``gt_jpeg_quality`` (the
re-save: ``None`` keeps the resized pixels, an int re-saves with PIL's defaults for the file's
extension, JPEG at this quality; PIL's default is 75) and ``script`` (the script whose real
set this is, for the record).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from diffbench.data.images import to_rgb
from diffbench.errors import ConfigError, DataError, ImageError, shown

REALS_ARGS = {"gt_resize": "none", "gt_jpeg_quality": None, "script": None}
REALS_RESIZES = ("none", "lanczos-height")
SHOW = 3  # files named per size in the mixed-size error


def resave_format(path: str | Path) -> str:
    """The format ``Image.save(path)`` picks from the file's extension (PIL's own table)."""
    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None:
        raise ImageError(f"{path}: PIL has no writer for '{suffix}' files, so the ground truth "
                         "cannot be re-saved as the protocol's script does")
    return fmt


def prepare_gt(path: str | Path, height: int, jpeg_quality: int | None,
               width: int | None = None, resample: int = Image.LANCZOS) -> np.ndarray:
    """A ground-truth file as eval.py's ``copy_resize_gt`` leaves it, as uint8 H×W×3.

    The image is resized in its own mode, as the scripts do before any RGB conversion: to
    `height` keeping the aspect (``int(w·height/h)``) or to ``width×height`` when `width` is
    given, with `resample`. With `jpeg_quality` set it is then re-saved in memory in the format
    of its extension with PIL's defaults (JPEG at `jpeg_quality`) and decoded again; last it is
    converted to RGB as clean-fid and torchvision read files.
    """
    try:
        with Image.open(path) as img:
            img.load()
            w, h = img.size
            out = img.resize((int(w * height / h) if width is None else width, height), resample)
        if jpeg_quality is not None:
            fmt = resave_format(path)
            buf = io.BytesIO()
            out.save(buf, format=fmt, **({"quality": int(jpeg_quality)} if fmt == "JPEG" else {}))
            out = Image.open(io.BytesIO(buf.getvalue()))
            out.load()
        return to_rgb(out)
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: ground-truth file disappeared while reading") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: cannot prepare the ground truth ({exc}); re-export the "
                         "file") from exc


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file's header, or an ImageError naming it."""
    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: image file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: corrupt image ({exc})") from exc


def prediction_size(paths: Sequence[Path], what: str, protocol: str) -> tuple[int, int]:
    """The one (width, height) of the generated images, or a one-line error listing the sizes."""
    groups: dict[tuple[int, int], list[Path]] = {}
    for path in map(Path, paths):
        if path.is_file():  # a missing image is reported by the scoring, naming its item
            groups.setdefault(image_size(path), []).append(path)
    if len(groups) == 1:
        return next(iter(groups))
    if not groups:
        raise DataError(f"{what}: none of the {len(paths)} generated images exists (first: "
                        f"{paths[0] if paths else '-'}); rerun the task to generate them")
    parts = [f"{w}x{h}: {len(ps)} (e.g. {', '.join(p.name for p in ps[:SHOW])})"
             for (w, h), ps in sorted(groups.items(), key=lambda kv: -len(kv[1]))]
    folder = Path(next(iter(groups.values()))[0]).parent
    raise DataError(f"{folder}: {what} has generated images of {len(groups)} sizes (width x "
                    f"height) — {'; '.join(parts)}; protocol {protocol} scores every image at "
                    "one height (CatVTON's eval.py takes it from whichever file it lists first): "
                    "generate all images at one size")


def reals_settings(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """A protocol's validated ``reals`` settings (None: the protocol sets none)."""
    if params is None:
        return None
    unknown = set(params) - set(REALS_ARGS)
    if unknown:
        raise ConfigError(f"protocol reals: unknown settings {sorted(unknown)}; allowed: "
                          f"{', '.join(REALS_ARGS)}")
    merged = {**REALS_ARGS, **params}
    if merged["gt_resize"] not in REALS_RESIZES:
        raise ConfigError(f"protocol reals: gt_resize {shown(merged['gt_resize'])} is not one of "
                          f"{', '.join(REALS_RESIZES)}")
    return merged


class PreparedReals:
    """A dataset's real images as a script feeds them to FID/KID, with a record of how.

    ``height=None``: the files as they are. Else each file whose height differs is brought to
    `height` by `prepare_gt`. Picklable (paths and numbers only) for loader workers.
    """

    def __init__(self, base: Any, height: int | None, jpeg_quality: int | None, script: str):
        self.base = base
        self.paths = [Path(p) for p in base.paths]
        self.keys = list(base.keys)
        self.height = None if height is None else int(height)
        self.jpeg_quality = jpeg_quality
        self.script = script
        self.sizes = [image_size(p) for p in self.paths]  # headers only

    def __len__(self) -> int:
        return len(self.paths)

    def _resized(self, i: int) -> bool:
        return self.height is not None and self.sizes[i][1] != self.height

    def __getitem__(self, i: int) -> np.ndarray:
        if not self._resized(i):
            return self.base[i]
        return prepare_gt(self.paths[i], self.height, self.jpeg_quality)

    def settings(self) -> dict[str, Any]:
        """What decides the prepared pixels besides the files' bytes."""
        from PIL import __version__ as pil_version
        from PIL import features

        if self.height is None:
            return {"gt_resize": "none"}
        return {"gt_resize": "lanczos-height", "height": self.height,
                "gt_jpeg_quality": self.jpeg_quality, "pil": pil_version,
                "libjpeg": features.version("libjpeg_turbo") or features.version("jpg")}

    def content_hash(self) -> str:
        """The files' hash; with a resize, sha256 over it and the settings (cache key)."""
        if self.height is None:
            return self.base.content_hash()
        blob = json.dumps({"files": self.base.content_hash(), **self.settings()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def output_sizes(self) -> dict[str, int]:
        """How many real images the features see at each size, as ``WIDTHxHEIGHT``."""
        return dict(Counter(f"{int(w * self.height / h)}x{self.height}" if self._resized(i)
                            else f"{w}x{h}" for i, (w, h) in enumerate(self.sizes)))

    def describe(self) -> dict[str, Any]:
        """The base source's description plus how the reals were prepared and at what size."""
        n = sum(self._resized(i) for i in range(len(self)))
        sizes = ", ".join(self.output_sizes())
        resave = (f", re-saved with PIL's defaults for the extension (JPEG quality "
                  f"{self.jpeg_quality})" if self.jpeg_quality is not None else "")
        what = (f"ground truth resized to {sizes} (width x height) LANCZOS{resave} "
                f"({self.script})" if n
                else f"ground truth as is, {sizes} (width x height) ({self.script})")
        return {**self.base.describe(), "preparation": what,
                "prepared": {"resized": n, "sizes_wxh": self.output_sizes(), **self.settings()}}


SCRIPTS = {"lanczos-height": "CatVTON eval.py copy_resize_gt",
           "none": "the files themselves"}


def reals_for(source: Any, params: dict[str, Any] | None, generated: Sequence[Path],
              what: str, protocol: str) -> Any:
    """The real images FID/KID should see under a protocol's ``reals`` settings.

    No settings: `source` unchanged. ``gt_resize: none``: the files as they are, described.
    ``lanczos-height`` needs every generated image at one size (else a one-line error, before any
    image is scored) and prepares the reals at that height.
    """
    settings = reals_settings(params)
    if settings is None:
        return source
    if settings["gt_resize"] == "none":
        return PreparedReals(source, None, None, settings.get("script") or SCRIPTS["none"])
    _, height = prediction_size(generated, what, protocol)
    return PreparedReals(source, height, settings["gt_jpeg_quality"],
                         settings.get("script") or SCRIPTS["lanczos-height"])
