"""A sample store belongs to one model and one set of settings: its generation fingerprint.

``RUN/samples/<point>/store.json`` records, before the first image is written, everything that
changes the pixels of a key: the suite (name, version), the task, its condition kind, dataset
and generation settings (suite seed, sampler arguments with the sweep point, label rule), the
model (adapter name, its arguments, dtype) and what the adapter describes of itself
(``describe()``: checkpoint, VAE, conversion rule, …). A value that names an existing file is
replaced by the file's sha256 (model arguments and ``describe()`` only), so moving a checkpoint
does not matter and overwriting it does.
Settings that cannot change pixels are left out: batch size, workers, device and device count,
``--limit``, number of images (keys beyond the first N are other keys).

A run whose fingerprint differs is refused before any work, naming the first difference.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffbench import __version__
from diffbench.errors import DiffbenchError
from diffbench.fsutil import file_sha256
from diffbench.generate import remove_temps, temp_name

if TYPE_CHECKING:
    from diffbench.adapters.base import Adapter

STORE_FILE = "store.json"
STORE_FORMAT = 1
_COUNTS = ("images_per_condition", "num_images")  # which keys exist, not what a key looks like
_NOT_PIXELS = ("device",)  # describe() keys that differ per rank or machine, not per image


class StoreMismatch(DiffbenchError):
    """The sample store was made by another model or with other settings."""


def _content(value: Any, files: bool = True) -> Any:
    """JSON-able `value`; with `files`, each string naming an existing file becomes its sha256."""
    if isinstance(value, dict):
        return {str(k): _content(v, files) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_content(v, files) for v in value]
    if files and isinstance(value, str) and value and len(value) < 4096:
        path = Path(value).expanduser()
        try:
            if path.is_file():
                return {"sha256": file_sha256(path)}
        except OSError:
            pass
        return value
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return str(value)


def settings_fingerprint(loaded, task_name: str, task, sweep: dict[str, Any], model: str | None,
                         model_args: dict[str, Any], dtype: str) -> dict[str, Any]:
    """Everything but the adapter's self-description: known before the model is loaded."""
    generation = task.generation.model_dump()
    for key in _COUNTS:
        generation.pop(key, None)
    generation["sampler"] = {**generation["sampler"], **sweep}
    dataset = task.dataset.model_dump() if task.dataset is not None else None
    suite = {"name": loaded.suite.name, "version": loaded.suite.version}
    return {"model": {"name": model, "args": _content(model_args), "dtype": dtype},
            **_content({"suite": suite, "task": task_name, "condition": task.condition,
                        "dataset": dataset, "generation": generation}, files=False)}


def adapter_fingerprint(adapter: Adapter) -> dict[str, Any]:
    """The adapter's `describe()`, without what differs per rank or machine."""
    return _content({k: v for k, v in adapter.describe().items() if k not in _NOT_PIXELS})


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves by dotted path (an empty mapping has none: {} and absent are the same)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def differences(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """'path: X in the store, Y now' for each setting that differs (parts absent in `now` skipped).

    Inside ``adapter`` a key present on one side only is not a difference: another diffbench
    version may describe an adapter with more or fewer keys.
    """
    out = []
    for part, value in now.items():
        old, new = _flat(stored.get(part), part), _flat(value, part)
        for path in sorted(set(old) | set(new), key=lambda p: (p.count("."), p)):
            if part == "adapter" and (path not in old or path not in new):
                continue
            if old.get(path) != new.get(path):
                out.append(f"{path}: {_short(old.get(path))} in the store, "
                           f"{_short(new.get(path))} now")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if value is not None else "absent"
    return text if len(text) <= 80 else text[:77] + "..."


def _images(sample_dir: Path) -> int:
    return sum(1 for p in sample_dir.glob("*.png") if not p.name.startswith("."))


def _holds_work(sample_dir: Path) -> bool:
    return _images(sample_dir) > 0 or any(sample_dir.glob("manifest*.jsonl"))


def _fix(sample_dir: Path) -> str:
    return f"use another --out, or --fresh to discard its {_images(sample_dir)} images"


def check_store(sample_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse a store made by another model or other settings (the parts in `fingerprint`)."""
    path = sample_dir / STORE_FILE
    if not path.is_file():
        if sample_dir.is_dir() and _holds_work(sample_dir):
            raise StoreMismatch(f"{sample_dir}: images without a record of the model and settings "
                                "that made them (no store.json: an older diffbench, or copied by "
                                f"hand); {_fix(sample_dir)}")
        return
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        raise StoreMismatch(f"{path}: unreadable; {_fix(sample_dir)}") from None
    diff = differences(stored, fingerprint)
    if diff:
        more = f" (and {len(diff) - 1} more)" if len(diff) > 1 else ""
        raise StoreMismatch(f"{sample_dir} was made by another model or other settings: "
                            f"{diff[0]}{more}; {_fix(sample_dir)}")


def claim_store(sample_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Record `fingerprint` in a new store, or check it against the store's (race-free)."""
    check_store(sample_dir, fingerprint)  # a store without store.json is refused here
    path = sample_dir / STORE_FILE
    if not path.is_file():
        _create(path, {"format": STORE_FORMAT, "diffbench_version": __version__,
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "fingerprint": fingerprint})
    check_store(sample_dir, fingerprint)  # whoever created it, it must be ours


def _create(path: Path, doc: dict[str, Any]) -> None:
    """Write `path` unless it exists; of writers starting together exactly one wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path, "store")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(doc, indent=1, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic create-if-absent, with the whole content at once
        except FileExistsError:
            pass
        except OSError:
            os.replace(tmp, path)  # no hard links here: shards of one run write equal content
    finally:
        tmp.unlink(missing_ok=True)


def discard_store(sample_dir: Path) -> None:
    """Delete a store (`--fresh`)."""
    if sample_dir.is_dir():
        shutil.rmtree(sample_dir)


def prepare_store(sample_dir: Path, fingerprint: dict[str, Any], fresh: bool,
                  exclusive: bool) -> None:
    """Before a point generates: discard (`fresh`), clean temporary files, claim the store."""
    if fresh:
        discard_store(sample_dir)
    elif exclusive and sample_dir.is_dir():
        remove_temps(sample_dir)  # no other writer runs: any temporary file is a dead one's
    claim_store(sample_dir, fingerprint)
