"""Published numbers: ``reference_stats/*.yaml`` shipped with diffbench, plus the
published-numbers files of the include paths (`diffbench.resources`); load and validate them.

Each file names its suite and protocol; each entry has a key, the task, the model, the source
(paper and table), a URL, metric values as printed, and an ``unverified`` flag. ``scales`` says
which metrics a paper prints multiplied (``{kid: 1000}``: printed KID×1000; ``{dino: 100}``): the
printed value is the raw value times the scale, so `raw_value` divides it back. diffbench stores
raw values and records the display scale beside them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from diffbench.errors import ConfigError
from diffbench.resources import include_paths, published_paths
from diffbench.yamlio import read_mapping


class PublishedEntry(BaseModel):
    """One published row: a model's numbers under one task, with its source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    task: str
    model: str
    source: str
    url: str | None = None
    metrics: dict[str, float] = Field(min_length=1)
    unverified: bool = False
    notes: str = ""


class PublishedFile(BaseModel):
    """A file of published rows for one suite and protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    published_format: int = Field(ge=1, le=1)
    suite: str
    protocol: str
    scales: dict[str, float] = Field(default_factory=dict)
    entries: list[PublishedEntry]

    def raw_value(self, metric: str, printed: float) -> float:
        """The raw value of a number printed with this file's scale for `metric`."""
        return printed / self.scales.get(metric, 1.0)


def load_published(path: str | Path) -> PublishedFile:
    """Load and validate one published-numbers file."""
    path = Path(path)
    try:
        published = PublishedFile.model_validate(read_mapping(path, "published numbers"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read published numbers: {exc}") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: {where}: {err['msg']}") from exc
    keys = [e.key for e in published.entries]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ConfigError(f"{path}: duplicate keys {dupes}")
    return published


def all_published(root: str | Path | None = None,
                  include: list[Path] | None = None) -> list[PublishedFile]:
    """Every published-numbers file in a folder; without one, the shipped files plus those of
    the include paths (`include`, default: the environment's and the config's)."""
    if root is not None:
        return [load_published(p) for p in sorted(Path(root).glob("*.yaml"))]
    search = include_paths() if include is None else include
    return [load_published(p) for p in published_paths(search)]
