"""Option parsing shared by several commands."""

from __future__ import annotations

from typing import Any

import yaml

from diffbench.errors import ConfigError


def parse_model_args(items: tuple[str, ...]) -> dict[str, Any]:
    """Repeated ``--model-arg KEY=VALUE`` (value read as YAML) → a mapping."""
    args: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--model-arg '{item}': expected KEY=VALUE, e.g. path=/data/samples")
        try:
            args[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--model-arg '{item}': the value is not valid YAML") from None
    return args
