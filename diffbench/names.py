"""Names that become file names: task names, sweep names and values, sample and item keys.

One pattern for all of them, so that nothing a suite, a command line or a dataset says can make
diffbench write outside the run directory: letters, digits, ``_``, ``.`` and ``-``, the first
character a letter or a digit (no ``/``, no ``..`` component, no hidden files), at most 200
characters. A sweep value may also start with a minus sign (``shift=-1``): it is never the first
character of a file name (``<task>@<name>=<value>``).
"""

from __future__ import annotations

import re
from typing import Any

from diffbench.errors import ConfigError, DiffbenchError, shown

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
MAX_LENGTH = 200
RULE = "letters, digits, '_', '.', '-'; first character a letter or digit"


def is_safe(text: Any) -> bool:
    """True when `text` is a string usable as one file-name component."""
    return isinstance(text, str) and len(text) <= MAX_LENGTH and bool(SAFE_NAME.match(text))


def check_name(text: Any, where: str, error: type[DiffbenchError] = ConfigError) -> str:
    """`text` when it is a safe file-name component, else `error` saying where and what is allowed."""
    if not is_safe(text):
        raise error(f"{where}: {shown(text)} is not usable as a file name (allowed: {RULE})")
    return text


def check_sweep_value(value: Any, where: str) -> Any:
    """A sweep value whose text (``str(value)``, an optional leading ``-``) is a safe name."""
    text = str(value)
    if not is_safe(text[1:] if text.startswith("-") else text):
        raise ConfigError(f"{where}: value {shown(text)} is not usable in a file name (allowed: "
                          f"{RULE}, or a number)")
    return value
