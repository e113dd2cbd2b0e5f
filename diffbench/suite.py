"""Suites and tasks: the YAML schema, `include:` resolution, overrides and validation.

A suite file is a mapping with ``name``, ``version``, ``description`` and ``tasks``; ``include:``
(a relative path or a suite name, or a list of them; `diffbench.resources` resolves them) names
suites this one builds on. Included files are merged first, in order, then this file on top:
mappings merge key by key, anything else is replaced, and ``null`` deletes a key. Unknown keys
and wrong types are errors that name the file, the key path and what is allowed. A suite is
loaded by path or by name (`diffbench.resources.resolve_suite`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from diffbench.errors import ConfigError, RegistryError
from diffbench.names import RULE, SAFE_NAME, is_safe
from diffbench.resources import SUITES, include_paths, resolve_include, resolve_suite, shipped_dir
from diffbench.yamlio import load_yaml, read_mapping

_NAME_PATTERN = SAFE_NAME.pattern


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    """Which dataset a task reads: the location name (never a path) and the reader."""

    name: str = Field(pattern=_NAME_PATTERN, description="data location name, e.g. vitonhd")
    reader: str = Field(description="dataset reader from the registry, e.g. folder")
    args: dict[str, Any] = Field(default_factory=dict, description="reader arguments")


class GenerationSpec(_Strict):
    """How many images to make per condition, with which seed and sampler arguments."""

    images_per_condition: int = Field(1, ge=1)
    num_images: int | None = Field(None, ge=1, description="total images (None: all conditions)")
    seed: int = Field(0, ge=0, description="suite seed; each image's seed derives from it and its key")
    sampler: dict[str, Any] = Field(default_factory=dict, description="arguments the adapter honours")


class TaskMetric(_Strict):
    """One metric of a task, with its arguments; the protocol comes from the task unless set here."""

    protocol: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)


class ReferenceSpec(_Strict):
    """What generated images are compared with, and which published table they stand beside."""

    dataset: DatasetSpec | None = None
    stats: str | None = Field(None, description="data location name of a statistics file")
    train: DatasetSpec | None = Field(None, description="the model's training images (ct, fls)")
    test: DatasetSpec | None = Field(None, description="held-out images for ct/fls (default: "
                                     "the reference)")
    published: str | None = Field(None, description="key of published numbers in reference_stats/")


class TaskSpec(_Strict):
    """One benchmark task: data, generation, metrics and reference."""

    description: str = ""
    kind: Literal["generate", "score"] = "generate"
    condition: Literal["class", "prompt", "tryon", "none"] = "none"
    dataset: DatasetSpec | None = None
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    protocol: str
    protocol_args: dict[str, Any] = Field(
        default_factory=dict, description="the protocol's input settings changed for this task "
        "(dgm-eval: clean_resize, max_images, subsample_seed, arch); recorded")
    metrics: dict[str, TaskMetric]
    reference: ReferenceSpec = Field(default_factory=ReferenceSpec)

    @field_validator("metrics")
    @classmethod
    def _some_metrics(cls, value: dict[str, TaskMetric]) -> dict[str, TaskMetric]:
        if not value:
            raise ValueError("a task needs at least one metric")
        return value


class Suite(_Strict):
    """A benchmark suite: a named, versioned set of tasks."""

    name: str = Field(pattern=_NAME_PATTERN)
    version: int = Field(ge=1, description="bump when numbers change")
    description: str = ""
    tasks: dict[str, TaskSpec]

    @field_validator("tasks")
    @classmethod
    def _some_tasks(cls, value: dict[str, TaskSpec]) -> dict[str, TaskSpec]:
        if not value:
            raise ValueError("a suite needs at least one task")
        bad = [name for name in value if not is_safe(name)]
        if bad:  # task names become folder and file names inside the run directory
            raise ValueError(f"task name {bad[0]!r} is not usable as a file name (allowed: "
                             f"{RULE})")
        return value


class LoadedSuite(BaseModel):
    """A validated suite with where it came from and the overrides applied to it."""

    model_config = ConfigDict(frozen=True)

    suite: Suite
    path: Path
    files: list[Path]
    origin: str = "file"
    overrides: dict[str, Any] = Field(default_factory=dict)
    resolved: dict[str, Any]


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Merge `top` onto `base`: mappings recurse, other values replace, None deletes."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_includes(path: Path, stack: tuple[Path, ...],
                      search: list[Path]) -> tuple[dict[str, Any], list[Path]]:
    path = path.resolve()
    if path in stack:
        chain = " -> ".join(str(p) for p in (*stack, path))
        raise ConfigError(f"{stack[-1]}: include cycle: {chain}")
    if not path.is_file():
        raise ConfigError(f"{path}: suite file not found")
    data = read_mapping(path, "the suite")
    includes = data.pop("include", None)
    includes = [] if includes is None else [includes] if isinstance(includes, str) else includes
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(f"{path}: include: must be a relative path or a suite name, or a list "
                          "of them")
    merged: dict[str, Any] = {}
    files: list[Path] = []
    for inc in includes:
        target = resolve_include(inc, path, search, stack)
        sub, sub_files = _resolve_includes(target, (*stack, path), search)
        merged = deep_merge(merged, sub)
        files += sub_files
    return deep_merge(merged, data), [*files, path]


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``KEY.PATH=VALUE`` (VALUE read as YAML) into a key path and a value."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"--set '{text}': expected KEY.PATH=VALUE, e.g. "
                          "tasks.main.generation.num_images=1000")
    try:
        value = load_yaml(raw, f"--set {key.strip()}") if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set '{text}': the value is not valid YAML") from exc
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> tuple[dict[str, Any], dict]:
    """Apply ``--set`` overrides to raw suite data; return the new data and the applied map."""
    out = copy.deepcopy(data)
    applied: dict[str, Any] = {}
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"--set '{text}': '{where}' is a value, not a mapping")
            node = child
        node[parts[-1]] = value
        applied[".".join(parts)] = value
    return out, applied


def _format_errors(path: Path, exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key; allowed here: {', '.join(_allowed_keys(err['loc']))}"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        lines.append(f"{path}: {loc}: {msg}")
    return lines


def _allowed_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = Suite
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            continue  # a free key (task name, metric name) inside a dict
        ann = field.annotation
        inner = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)]
        for candidate in inner:
            if issubclass(candidate, BaseModel):
                model = candidate
                break
    keys = list(model.model_fields)
    return keys + (["include"] if model is Suite else [])


def suite_problems(path: str | Path, overrides: list[str] | None = None,
                   include: list[Path] | None = None) -> list[str]:
    """All problems of a suite (file or name), one line each (empty when valid)."""
    try:
        load_suite(path, overrides, include)
    except SuiteInvalid as exc:
        return exc.problems
    except ConfigError as exc:
        return [str(exc)]
    return []


class SuiteInvalid(ConfigError):
    """A suite failed validation; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)


def load_suite(ref: str | Path, overrides: list[str] | None = None,
               include: list[Path] | None = None) -> LoadedSuite:
    """Load a suite (a path, or a name: include paths, then shipped) with its includes and
    overrides, validate it, and check registry names, metric arguments and protocol–metric
    compatibility (`diffbench.preflight`). `include` defaults to the environment's and the
    config's include paths."""
    search = include_paths() if include is None else list(include)
    found = resolve_suite(ref, search)
    path = found.path
    data, files = _resolve_includes(path, (), search)
    data, applied = apply_overrides(data, overrides or [])
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise SuiteInvalid(_format_errors(path, exc)) from exc
    from diffbench.preflight import suite_problems as task_problems

    problems = _registry_problems(path, suite) + task_problems(path, suite)
    if problems:
        raise SuiteInvalid(problems)
    return LoadedSuite(suite=suite, path=path.resolve(), files=files, origin=found.origin,
                       overrides=applied, resolved=data)


def _registry_problems(path: Path, suite: Suite) -> list[str]:
    from diffbench.registry import DATASETS, METRICS, PROTOCOLS

    problems = []

    def check(registry, name: str, where: str) -> None:
        try:
            registry.entry(name)
        except RegistryError as exc:
            problems.append(f"{path}: {where}: {exc}")

    for tname, task in suite.tasks.items():
        check(PROTOCOLS, task.protocol, f"tasks.{tname}.protocol")
        for mname, metric in task.metrics.items():
            check(METRICS, mname, f"tasks.{tname}.metrics.{mname}")
            if metric.protocol:
                check(PROTOCOLS, metric.protocol, f"tasks.{tname}.metrics.{mname}.protocol")
        ref = task.reference
        for where, ds in (("dataset", task.dataset), ("reference.dataset", ref.dataset),
                          ("reference.train", ref.train), ("reference.test", ref.test)):
            if ds is not None:
                check(DATASETS, ds.reader, f"tasks.{tname}.{where}.reader")
    return problems


def default_suites_dir() -> Path:
    """The shipped suites folder (package data, or ``suites/`` of a source checkout)."""
    return shipped_dir(SUITES)
