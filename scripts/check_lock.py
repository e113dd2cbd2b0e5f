"""Fail unless every package pinned in a pip constraints file is installed at its pinned version.

Used by the Makefile after installing with ``-c requirements/test-constraints.txt``: pins of
packages that are not installed (other platforms' extras) are ignored; a different version of
an installed one fails with its name, both versions and the fix.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(path: str) -> int:
    """Compare the constraints file at `path` with the installed distributions."""
    installed = {_norm(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        have = installed.get(_norm(name))
        if have is not None and have != version.strip():
            wrong.append(f"{name.strip()} {have} (locked {version.strip()})")
    if wrong:
        print(f"check_lock: {len(wrong)} package(s) differ from {path}: {', '.join(wrong)}; "
              "run `make clean-venv` and `make install`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
