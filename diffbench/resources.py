"""Where suites and published numbers come from: shipped with diffbench, include paths, files.

**Shipped.** The repository's top-level ``suites/`` and ``reference_stats/`` are the single
source. A wheel carries them as package data (``diffbench/suites``, ``diffbench/reference_stats``:
pyproject.toml maps the two folders into the package), read with `importlib.resources`; a source
checkout (editable install, ``PYTHONPATH``) reads the top-level folders themselves.

**Include paths** add user folders: ``--include-path DIR`` (repeatable), then
``DIFFBENCH_INCLUDE_PATH``, then ``include.path`` in the user config (both ``os.pathsep``
separated). Every ``*.yaml`` in such a folder is a suite, or a published-numbers file when it has
a top-level ``published_format:`` key; ``_*.yaml`` files are include-only suite parts.

**A suite reference** resolves in this order: a path that exists wins; then ``NAME`` (or
``NAME.yaml``) in each include path, in order; then the shipped suite ``NAME``. ``include:``
inside a suite follows the same rules, the path being relative to the including file, and never
resolves to a file already being included (a user ``vitonhd.yaml`` may ``include: vitonhd`` to
build on the shipped one).
"""

from __future__ import annotations

import difflib
import importlib.resources
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from diffbench.config import get_value
from diffbench.errors import ConfigError

SUITES, PUBLISHED = "suites", "reference_stats"
ENV_INCLUDE = "DIFFBENCH_INCLUDE_PATH"
CONFIG_INCLUDE = "include.path"
SHIPPED = "shipped"
_PUBLISHED_KEY = re.compile(r"^published_format\s*:", re.MULTILINE)


@dataclass(frozen=True)
class Found:
    """A suite or published-numbers file and where it came from."""

    name: str
    path: Path
    origin: str  # "shipped", "include path DIR" or "file"
    shadowed_by: Path | None = None


def shipped_dir(kind: str) -> Path:
    """The shipped folder `kind` (``suites`` or ``reference_stats``): package data when
    installed from a wheel, else the top-level folder of the source checkout."""
    packaged = Path(str(importlib.resources.files("diffbench").joinpath(kind)))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / kind


def _split(value: str) -> list[str]:
    return [p for p in value.split(os.pathsep) if p.strip()]


def include_paths(extra: Iterable[str | Path] = ()) -> list[Path]:
    """The include folders: the given ones (``--include-path``), then the environment's, then
    the config's; each must be an existing folder."""
    found: list[tuple[str, str]] = [(str(p), "--include-path") for p in extra]
    found += [(p, ENV_INCLUDE) for p in _split(os.environ.get(ENV_INCLUDE, ""))]
    configured = get_value(CONFIG_INCLUDE)
    if configured:
        found += [(p, f"config {CONFIG_INCLUDE}") for p in _split(str(configured))]
    out: list[Path] = []
    for text, source in found:
        path = Path(text).expanduser()
        if not path.is_dir():
            raise ConfigError(f"{source} {text}: not a folder; give a folder of suites and "
                              "published-numbers files")
        if path.resolve() not in [p.resolve() for p in out]:
            out.append(path)
    return out


def is_published_file(path: Path) -> bool:
    """True when a YAML file holds published numbers (a top-level ``published_format:`` key)."""
    try:
        return bool(_PUBLISHED_KEY.search(path.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return False


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.y*ml") if p.is_file() and p.suffix in (".yaml", ".yml"))


def _folders(include: Iterable[Path]) -> list[tuple[Path, str]]:
    return [(p, f"include path {p}") for p in include] + [(shipped_dir(SUITES), SHIPPED)]


def suites(include: Iterable[Path] = ()) -> list[Found]:
    """Every suite (not ``_*`` parts) in the include paths, then the shipped ones; a name met
    again later is marked as shadowed by the first."""
    out: list[Found] = []
    first: dict[str, Path] = {}
    for folder, origin in _folders(include):
        for path in _yaml_files(folder):
            if path.name.startswith("_") or is_published_file(path):
                continue
            out.append(Found(path.stem, path, origin, first.get(path.stem)))
            first.setdefault(path.stem, path)
    return out


def published_paths(include: Iterable[Path] = ()) -> list[Path]:
    """Published-numbers files: the shipped ones, then those in the include paths."""
    shipped = _yaml_files(shipped_dir(PUBLISHED))
    return shipped + [p for folder in include for p in _yaml_files(folder)
                      if is_published_file(p)]


def _named(name: str, include: Iterable[Path], skip: Iterable[Path] = ()) -> Found | None:
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix in (".yaml", ".yml") else name
    skipped = {p.resolve() for p in skip}
    for folder, origin in _folders(include):
        for path in (folder / f"{stem}.yaml", folder / f"{stem}.yml"):
            if path.is_file() and path.resolve() not in skipped and not is_published_file(path):
                return Found(stem, path, origin)
    return None


def _looks_like_path(ref: str) -> bool:
    return "/" in ref or os.sep in ref or ref.startswith(".")


def resolve_suite(ref: str | Path, include: Iterable[Path] = ()) -> Found:
    """The suite file `ref` names: an existing path, else a suite name (include paths, then
    shipped). A path that does not exist (``suites/vitonhd.yaml`` outside a checkout) falls back
    to the suite of its file's name, with a note."""
    include = list(include)
    path = Path(ref).expanduser()
    if path.is_file():
        return Found(path.stem, path, "file")
    text = str(ref)
    found = None if _looks_like_path(text) else _named(text, include)
    if found is not None:
        return found
    if _looks_like_path(text) and not path.exists() and path.suffix in ("", ".yaml", ".yml"):
        found = _named(path.name, include)
        if found is not None:
            from diffbench.log import logger

            logger.warning("%s: no such file; using the %s suite '%s' (%s)", text,
                           found.origin, found.name, found.path)
            return found
    names = sorted({f.name for f in suites(include)})
    close = difflib.get_close_matches(Path(text).stem, names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    where = "".join(f" {p}" for p in include) or " (none)"
    raise ConfigError(f"suite '{text}' not found: no such file, no suite of that name in the "
                      f"include paths{where}, and none shipped (shipped and included: "
                      f"{', '.join(names) or 'none'}){hint}")


def resolve_include(ref: str, including: Path, include: Iterable[Path],
                    stack: Iterable[Path]) -> Path:
    """The file an ``include:`` entry of `including` names (relative path first, then a name)."""
    if Path(ref).is_absolute():
        raise ConfigError(f"{including}: include: '{ref}' must be relative to the suite file or "
                          "a suite name")
    relative = including.parent / ref
    if relative.is_file():
        return relative
    found = None if _looks_like_path(ref) else _named(ref, include, skip=[*stack, including])
    if found is None:
        raise ConfigError(f"{including}: include: '{ref}' is neither a file next to this suite "
                          "nor a suite name in the include paths or shipped with diffbench "
                          "(see `diffbench suites list`)")
    return found.path
