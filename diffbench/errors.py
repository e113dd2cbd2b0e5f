"""User-facing errors: each says what went wrong, where, and how to fix it.

The CLI turns any `DiffbenchError` into one line on stderr and exit code 2 (no traceback).
"""

from __future__ import annotations


class DiffbenchError(Exception):
    """Base class of every error a user can cause; the message is the whole story."""

    exit_code = 2


class ConfigError(DiffbenchError):
    """A suite, an override or the user config file is invalid."""


class RegistryError(DiffbenchError):
    """An unknown adapter, metric, dataset or protocol name, or a broken plugin."""


class DataError(DiffbenchError):
    """A dataset location is missing, or its layout or contents are wrong."""


class ImageError(DataError):
    """An image file is corrupt, truncated, of an unsupported mode or of the wrong size."""


class WeightsError(DiffbenchError):
    """Network weights are missing, corrupt, or cannot be fetched."""


class MetricInputError(DiffbenchError):
    """Inputs cannot give a meaningful metric (too few samples, NaN features, …)."""


class StorageError(DiffbenchError):
    """The operating system refused a read or write (full disk, permissions, a file where a
    folder should be); the message names the path and the fix."""


class ResultsError(DiffbenchError):
    """A results file is missing, unreadable or does not follow the schema."""


SHOWN_CHARS = 200


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """`value`'s repr for an error message, cut to `limit` characters: a message never formats
    an unbounded value (a huge list from a suite, a line of a file that failed a check).

    The repr of a container is built piece by piece and stops at the limit, so even a value
    made of shared parts that would expand to gigabytes costs at most a few kilobytes here.
    """
    out: list[str] = []
    budget = [limit + 1]

    def put(text: str) -> bool:
        out.append(text[: budget[0]])
        budget[0] -= len(text)
        return budget[0] > 0

    def walk(v: object) -> bool:
        if isinstance(v, dict):
            if not put("{"):
                return False
            for i, (k, item) in enumerate(v.items()):
                if (i and not put(", ")) or not walk(k) or not put(": ") or not walk(item):
                    return False
            return put("}")
        if isinstance(v, (list, tuple)):
            open_, close = ("[", "]") if isinstance(v, list) else ("(", ")")
            if not put(open_):
                return False
            for i, item in enumerate(v):
                if (i and not put(", ")) or not walk(item):
                    return False
            return put(close)
        text = repr(v) if not isinstance(v, str) else repr(v[: budget[0] + 2])
        return put(text)

    walk(value)
    text = "".join(out)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(exc: BaseException, limit: int = 300) -> str:
    """`exc`'s text for an error message: whitespace collapsed (the CLI prints one line), and
    cut to `limit` characters (third-party errors can quote whole files or tracebacks)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
