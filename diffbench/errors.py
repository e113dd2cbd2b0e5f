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
