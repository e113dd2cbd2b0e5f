"""The user config file.

The user config file is ``$DIFFBENCH_CONFIG``, else ``$XDG_CONFIG_HOME/diffbench/config.yaml``,
else ``~/.config/diffbench/config.yaml``; ``diffbench config set SECTION.NAME VALUE`` writes it.
Sections: ``data`` (dataset locations), ``weights`` (weights files, `diffbench.weights`) and
``include`` (``include.path``: suite and published-numbers folders, `diffbench.resources`).

Where a dataset named in a suite lives is `diffbench.refdata.resolve_data`'s job.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from diffbench.errors import ConfigError
from diffbench.fsutil import atomic_write
from diffbench.yamlio import read_mapping

_KEY = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_.\-]+)+$")
SECTIONS = ("data", "weights", "include")


def config_path() -> Path:
    """Where the user config file lives."""
    if os.environ.get("DIFFBENCH_CONFIG"):
        return Path(os.environ["DIFFBENCH_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "diffbench" / "config.yaml"


def load_config() -> dict[str, Any]:
    """The user config as a mapping (empty when there is no file)."""
    path = config_path()
    if not path.exists():
        return {}
    return read_mapping(path, "the user config", fix="fix or delete it")


def _split_key(key: str) -> tuple[str, str]:
    if not _KEY.match(key) or key.split(".", 1)[0] not in SECTIONS:
        raise ConfigError(f"config key '{key}': expected SECTION.NAME with SECTION one of "
                          f"{', '.join(SECTIONS)}, e.g. data.vitonhd, weights.inception-2015-12-05, "
                          "include.path")
    section, name = key.split(".", 1)
    return section, name


def set_value(key: str, value: str | None) -> Path:
    """Set (or with None, remove) ``SECTION.NAME`` in the user config; return the file."""
    section, name = _split_key(key)
    data = load_config()
    table = data.setdefault(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{config_path()}: '{section}' must be a mapping")
    if value is None:
        table.pop(name, None)
    else:
        table[name] = value
    return atomic_write(config_path(), yaml.safe_dump(data, sort_keys=True).encode("utf-8"))


def get_value(key: str) -> Any:
    """The value of ``SECTION.NAME`` in the user config, or None."""
    section, name = _split_key(key)
    table = load_config().get(section) or {}
    return table.get(name) if isinstance(table, dict) else None


def parse_pairs(items: tuple[str, ...] | list[str], option: str) -> dict[str, str]:
    """Parse repeated ``NAME=VALUE`` options into a mapping."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"{option} '{item}': expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out
