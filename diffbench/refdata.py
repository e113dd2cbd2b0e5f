"""Reference data by name: the datasets suites name, which diffbench can fetch, and which not.

Two kinds of entries:

- **fetchable**: a file at a published URL (ADM's reference batches, from the links in
  openai/guided-diffusion's ``evaluations/README.md``). ``diffbench data fetch NAME`` downloads it
  into the data home (``$DIFFBENCH_HOME/data``), resuming a partial download (`diffbench.download`),
  and checks it: against the published sha256 when there is one; when none is published (ADM
  publishes none) the sha256 of the first fetch or import is recorded in
  ``$DIFFBENCH_HOME/data/recorded-sha256.json`` and every later fetch, import and verify must
  match it. ADM batches are also checked to be readable batches (``arr_0`` uint8 N×H×W×3).
- **licensed**: datasets whose licences do not let diffbench redistribute them (VITON-HD,
  DressCode, DreamBench). Their entries say where to get them and the layout the readers expect;
  they are never downloaded. Point diffbench at them with ``--data NAME=PATH`` or
  ``diffbench config set data.NAME PATH``; ``diffbench data verify NAME`` checks the layout.

**Where a dataset lives** (`resolve_data`), in order: ``--data NAME=PATH``, the environment
variable ``DIFFBENCH_DATA_<NAME>`` (upper case, ``-`` and ``.`` become ``_``), ``data.NAME`` in
the user config (``diffbench config set data.NAME PATH``), then the file fetched or imported
into the data home. `open_dataset` builds a suite's reader at that location.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffbench.config import config_path, get_value
from diffbench.data.npz import NpzSource
from diffbench.download import diffbench_home, download, import_copy
from diffbench.errors import ConfigError, DataError
from diffbench.fsutil import atomic_write, file_sha256
from diffbench.log import logger

_ADM = "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/"
_ADM_SOURCE = "openai/guided-diffusion evaluations/README.md"
_IMAGENET = "ImageNet images (image-net.org terms: non-commercial research); published by OpenAI"
_LSUN = "LSUN images (the LSUN terms of use); published by OpenAI"


@dataclass(frozen=True)
class DataSpec:
    """One dataset a suite can name."""

    name: str
    description: str
    licence: str
    url: str | None = None          # fetchable when set
    filename: str | None = None
    sha256: str | None = None       # published digest; None: recorded at the first fetch
    source: str = ""                # where the URL is published
    get: str = ""                   # licensed: where and how to obtain it
    layout: tuple[tuple[str, bool], ...] = ()  # licensed: (path or a|b alternatives, required)

    @property
    def fetchable(self) -> bool:
        """True when diffbench may download the file."""
        return self.url is not None


def _adm(name: str, path: str, what: str) -> DataSpec:
    return DataSpec(name, f"ADM reference batch, {what}: 10,000 images (arr_0) and statistics "
                    "precomputed over the whole dataset",
                    _LSUN if path.startswith("lsun/") else _IMAGENET,
                    _ADM + path, path.rsplit("/", 1)[1], None, _ADM_SOURCE)


DATASETS: dict[str, DataSpec] = {s.name: s for s in (
    _adm("imagenet64-ref", "imagenet/64/VIRTUAL_imagenet64_labeled.npz", "ImageNet 64×64"),
    _adm("imagenet128-ref", "imagenet/128/VIRTUAL_imagenet128_labeled.npz", "ImageNet 128×128"),
    _adm("imagenet256-ref", "imagenet/256/VIRTUAL_imagenet256_labeled.npz", "ImageNet 256×256"),
    _adm("imagenet512-ref", "imagenet/512/VIRTUAL_imagenet512.npz", "ImageNet 512×512"),
    _adm("lsun-bedroom-ref", "lsun/bedroom/VIRTUAL_lsun_bedroom256.npz", "LSUN bedroom 256×256"),
    _adm("lsun-cat-ref", "lsun/cat/VIRTUAL_lsun_cat256.npz", "LSUN cat 256×256"),
    _adm("lsun-horse-ref", "lsun/horse/VIRTUAL_lsun_horse256.npz", "LSUN horse 256×256"),
    DataSpec("vitonhd", "VITON-HD (zalando-hd-resized) test split, 1024×768: 2,032 pairs",
             "CC BY-NC 4.0; not redistributed by diffbench",
             get="download zalando-hd-resized from the link in the shadow2496/VITON-HD README",
             layout=(("test_pairs.txt|test_pairs_unpaired.txt", True), ("test/image/", True),
                     ("test/cloth/", True), ("test/agnostic-mask/", False),
                     ("test/image-densepose/", False), ("test/vitonhd_test_tagged.json", False))),
    DataSpec("dresscode", "DressCode test pairs (upper_body, lower_body, dresses), 1024×768",
             "academic non-commercial, by signed request form; no redistribution",
             get="request it from aimagelab (github.com/aimagelab/dress-code README: release "
                 "form, institutional e-mail)",
             layout=(("upper_body/images/", True), ("lower_body/images/", True),
                     ("dresses/images/", True), ("test_pairs_paired.txt|upper_body/"
                                                 "test_pairs_paired.txt", True),
                     ("test_pairs_unpaired.txt|upper_body/test_pairs_unpaired.txt", True),
                     ("upper_body/image-densepose/", False), ("upper_body/dc_caption.txt", False),
                     ("upper_body/agnostic-mask/", False))),
    DataSpec("dreambooth", "DreamBench: 30 subjects, 25 prompts each (the 'dataset' folder)",
             "CC BY 4.0 and the Unsplash licence per image (references_and_licenses.txt); not "
             "redistributed by diffbench",
             get="git clone https://github.com/google/dreambooth and use its dataset/ folder",
             layout=(("prompts_and_classes.txt", True), ("dog/", True),
                     ("references_and_licenses.txt", False))),
)}


def data_home() -> Path:
    """Where fetched and imported reference files live."""
    return diffbench_home() / "data"


def spec(name: str) -> DataSpec:
    """The entry of a known dataset, or a DataError listing the known ones."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}'; known: {', '.join(sorted(DATASETS))} "
                        "(see `diffbench data list`)")
    return DATASETS[name]


def locate(name: str) -> Path | None:
    """The fetched or imported file of a fetchable dataset in the data home, or None."""
    s = DATASETS.get(name)
    if s is None or not s.fetchable:
        return None
    path = data_home() / str(s.filename)
    return path if path.is_file() else None


def how_to_get(name: str) -> str:
    """A sentence for a 'where is dataset NAME?' error: fetch it, or where to get it."""
    s = DATASETS.get(name)
    if s is None:
        return ""
    if s.fetchable:
        return f", or download it: diffbench data fetch {name}"
    return f" ({s.get}; not downloadable: {s.licence}; see `diffbench data list`)"


def env_name(name: str) -> str:
    """The environment variable that locates dataset `name`."""
    return "DIFFBENCH_DATA_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def where(name: str, cli: dict[str, str] | None = None) -> tuple[Path, str] | None:
    """Where dataset `name` lives and which of the four ways said so; None when none does.
    A location that is set but does not exist is an error."""
    cli = cli or {}
    if name in cli:
        path, source = cli[name], "--data"
    elif os.environ.get(env_name(name)):
        path, source = os.environ[env_name(name)], env_name(name)
    elif get_value(f"data.{name}"):
        path, source = str(get_value(f"data.{name}")), f"{config_path()} (data.{name})"
    elif (home := locate(name)) is not None:
        return home, f"the data home ({home.parent})"
    else:
        return None
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise DataError(f"dataset '{name}' is set to {resolved} by {source}, but that path does "
                        "not exist; fix the path")
    return resolved, source


def resolve_data(name: str, cli: dict[str, str] | None = None) -> tuple[Path, str]:
    """Where dataset `name` lives and which of the four ways said so (an error naming them all
    when none does)."""
    found = where(name, cli)
    if found is None:
        raise DataError(
            f"where is dataset '{name}'? tell diffbench with --data {name}=PATH, or set "
            f"{env_name(name)}=PATH, or run: diffbench config set data.{name} PATH"
            + how_to_get(name))
    return found


def _recorded_file() -> Path:
    return data_home() / "recorded-sha256.json"


def _recorded() -> dict[str, str]:
    try:
        data = json.loads(_recorded_file().read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def expected_sha256(s: DataSpec) -> tuple[str | None, str]:
    """The digest a file of `s` must have and where it comes from ('published', 'recorded')."""
    if s.sha256:
        return s.sha256, "published"
    recorded = _recorded().get(s.name)
    return (recorded, "recorded at the first fetch or import") if recorded else (None, "")


def _record(s: DataSpec, digest: str) -> None:
    data = {**_recorded(), s.name: digest}
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    path = atomic_write(_recorded_file(), text.encode())
    logger.info("%s: no published sha256; recorded %s (later fetches, imports and `data "
                "verify` must match it) in %s", s.name, digest, path)


def check(s: DataSpec, path: Path, record: bool = False) -> str:
    """Check a file of `s`: its sha256 (published or recorded) and, for ADM batches, that it
    reads as one. With `record`, a first digest is recorded. Returns the sha256."""
    NpzSource(path)  # a truncated or foreign file fails here, with the reason
    digest = file_sha256(path)
    expected, origin = expected_sha256(s)
    if expected is not None and digest != expected:
        raise DataError(f"{path}: sha256 {digest} does not match {s.name} ({expected}, "
                        f"{origin}); the file is corrupt or another file; fetch or import it "
                        "again")
    if expected is None and record:
        _record(s, digest)
    return digest


def _fetchable(name: str) -> DataSpec:
    s = spec(name)
    if not s.fetchable:
        raise DataError(f"{name} is not downloadable ({s.licence}): {s.get}, then pass its "
                        f"root with --data {name}=PATH or run `diffbench config set data.{name} "
                        "PATH` (layout: `diffbench data list`)")
    return s


def fetch(name: str, force: bool = False, timeout: float = 60.0) -> Path:
    """Download a fetchable dataset into the data home (resuming), check it, return its path."""
    s = _fetchable(name)
    fix = (f"on a machine without internet copy the file and run `diffbench data import {name} "
           f"/path/to/{s.filename}`")
    return download(str(s.url), data_home() / str(s.filename),
                    lambda path: check(s, path, record=True), name, DataError, fix, timeout, force)


def import_file(name: str, src: str | Path) -> Path:
    """Check a file copied from elsewhere as dataset `name` and place it in the data home."""
    s = _fetchable(name)
    return import_copy(src, data_home() / str(s.filename),
                       lambda path: check(s, path, record=True), DataError)


def verify(name: str, path: Path) -> str:
    """Check dataset `name` at `path`: the file's checksum, or a licensed folder's layout.
    Returns a one-line verdict; raises DataError when it fails."""
    s = spec(name)
    if s.fetchable:
        digest = check(s, path)
        _, origin = expected_sha256(s)
        return f"sha256 {digest[:16]}… " + (f"matches ({origin})" if origin else
                                            "(nothing published or recorded to compare with)")
    if not path.is_dir():
        raise DataError(f"{name}: {path} is not a folder; give the dataset's root folder")
    absent = [(entry, needed) for entry, needed in s.layout
              if not any((path / alt).exists() for alt in entry.split("|"))]
    required = [entry for entry, needed in absent if needed]
    optional = [entry for entry, needed in absent if not needed]
    if required:
        raise DataError(f"{name}: {path} lacks {', '.join(required)}; expected layout: "
                        f"{layout_text(s)}")
    extra = f"; absent optional parts (some models need them): {', '.join(optional)}" \
        if optional else ""
    return "layout ok (every file is checked when a run reads it)" + extra


def layout_text(s: DataSpec) -> str:
    """The expected layout in one line: required entries, then optional ones in brackets."""
    return ", ".join(e if needed else f"[{e}]" for e, needed in s.layout)


def list_data() -> list[dict[str, object]]:
    """One row per known dataset: name, kind, where it is now (data home), checksum, licence,
    URL or how to get it, expected layout."""
    rows: list[dict[str, object]] = []
    for name, s in sorted(DATASETS.items()):
        where = locate(name)
        expected, origin = expected_sha256(s) if s.fetchable else (None, "")
        rows.append({"name": name, "kind": "fetch" if s.fetchable else "licensed",
                     "description": s.description, "where": str(where) if where else None,
                     "file": s.filename, "sha256": expected, "sha256_origin": origin or None,
                     "licence": s.licence, "url": s.url, "source": s.source or None,
                     "get": s.get or None, "layout": layout_text(s) or None})
    return rows


def open_dataset(name: str, reader: str, args: Mapping[str, Any] | None = None,
                 data: Mapping[str, str] | None = None, where: str = "dataset") -> Any:
    """Build the reader `reader` for data location `name` (resolved only if the reader needs it:
    its declared ``location_arg`` is not None)."""
    from diffbench.registry import DATASETS

    cls = DATASETS.get(reader)
    kwargs = dict(args or {})
    try:
        arg = cls.location_arg
    except AttributeError:
        raise ConfigError(f"{where}: reader '{reader}' ({cls.__module__}.{cls.__qualname__}) does "
                          "not declare `location_arg` (the constructor argument that receives "
                          "the data location, or None); add it to the class") from None
    if arg is not None:
        path, _ = resolve_data(name, dict(data or {}))
        kwargs[arg] = path
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: reader '{reader}' does not take these arguments "
                          f"({exc}); see `diffbench datasets`") from None
