"""Run directories and the results record: build, write, read, validate.

Layout of a run directory::

    RUN/
      .diffbench.lock               held by the run writing here (diffbench.lock)
      results.json                  one record per task: results/<task>.json
      results/<task>.json
      samples/<task>/<key>.png      generated images
      samples/<task>/manifest.jsonl key, seed, condition, sampler args, sha256 per image
      samples/<task>/store.json     the model and settings that made them (diffbench.store)

Every record is checked against ``diffbench/schemas/results.schema.json`` when written and read.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import jsonschema

from diffbench import __version__
from diffbench.errors import ResultsError
from diffbench.fsutil import atomic_write

PACKAGES = ("torch", "torchvision", "numpy", "scipy", "pillow", "torch-fidelity", "clean-fid",
            "open_clip_torch", "lpips", "scikit-image", "diffusers")


@dataclass(frozen=True)
class RunLayout:
    """Paths inside one run directory."""

    root: Path

    def samples(self, task: str) -> Path:
        """Folder of a task's generated images."""
        return self.root / "samples" / task

    def manifest(self, task: str) -> Path:
        """The task's manifest.jsonl."""
        return self.samples(task) / "manifest.jsonl"

    def results(self, task: str | None = None) -> Path:
        """The results file of a task (or the run's summary when task is None)."""
        return self.root / "results.json" if task is None else self.root / "results" / f"{task}.json"


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The results JSON Schema shipped in the package."""
    text = resources.files("diffbench").joinpath("schemas/results.schema.json").read_text("utf-8")
    return json.loads(text)


def validation_problems(record: Any) -> list[str]:
    """Schema violations of a record, one line each (empty when valid)."""
    validator = jsonschema.Draft202012Validator(schema())
    problems = []
    for err in sorted(validator.iter_errors(record), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        problems.append(f"{where}: {err.message}")
    return problems


def validate(record: Any, where: str = "results") -> None:
    """Raise ResultsError when a record does not follow the schema."""
    problems = validation_problems(record)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ResultsError(f"{where}: not a valid diffbench results record: {problems[0]}{more}")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that move numbers."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The git revision of the diffbench checkout, when it is one."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and rev else None


def environment(device: str | None = None, dtype: str | None = None,
                world_size: int = 1) -> dict[str, Any]:
    """The environment block of a record."""
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "packages": package_versions(), "git_revision": git_revision(),
            "world_size": world_size, "device": device, "dtype": dtype}


def new_record(*, kind: str, protocol: str, metrics: dict[str, dict[str, Any]],
               counts: dict[str, int | None], **fields: Any) -> dict[str, Any]:
    """A results record with the bookkeeping filled in; `fields` adds the optional blocks."""
    record: dict[str, Any] = {
        "schema_version": 1,
        "diffbench_version": __version__,
        "run_id": fields.pop("run_id", None) or uuid.uuid4().hex[:12],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "kind": kind,
        "protocol": {"name": protocol, "settings": fields.pop("protocol_settings", {}),
                     **({"others": others} if (others := fields.pop("other_protocols", None))
                        else {})},
        "metrics": metrics,
        "counts": counts,
        "environment": fields.pop("environment", None) or environment(),
    }
    record.update(fields)
    return record


def non_finite(value: Any, where: str = "") -> tuple[str, float] | None:
    """(dotted path, value) of the first NaN or infinite number in `value`, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "(top level)", value
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = non_finite(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def _check_finite(record: Any, where: str) -> None:
    bad = non_finite(record)
    if bad:
        raise ResultsError(f"{where}: {bad[0]} is {bad[1]}; a results record holds finite "
                           "numbers only (a metric that cannot be computed must fail, not record "
                           "NaN)")


def dumps(record: dict[str, Any], where: str = "results") -> str:
    """A validated record as JSON text (what `write` stores)."""
    _check_finite(record, where)
    validate(record, where)
    return json.dumps(record, indent=2, sort_keys=False, allow_nan=False) + "\n"


def write(record: dict[str, Any], path: str | Path) -> Path:
    """Validate and write a record atomically (temporary file, fsync, rename; see fsutil)."""
    path = Path(path)
    data = dumps(record, str(path)).encode("utf-8")
    if path.is_dir():
        raise ResultsError(f"{path}: is a folder; give a file name for the results record")
    return atomic_write(path, data, fault="results-write")


def read(path: str | Path) -> dict[str, Any]:
    """Read and validate a record."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"{path}: results file not found")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: not JSON ({exc}); was the run killed while writing?") from exc
    # Python's json reads the bare tokens NaN/Infinity (and 1e999 as inf): refuse them all,
    # or a NaN metric would compare as neither worse nor better and pass a gate.
    _check_finite(record, str(path))
    validate(record, str(path))
    return record
