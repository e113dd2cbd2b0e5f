"""YAML that people write (suites, baselines, the config file, ``--set`` values): read safely,
with a bound on what anchors and aliases expand to, and with every node owned by one place.

PyYAML builds an aliased node (``*x``, or a merge ``<<: *x``) once and shares the Python object
wherever it is used. Two faults follow: a 2 KB file of nested aliases ("billion laughs")
expands to gigabytes as soon as anything walks it (validation, an error message, a
fingerprint), and a change to one place (``--set tasks.paired.generation.seed=7``) shows up in
every place that aliased it. So the composed node graph is measured first (each node counted as
often as it is used, without expanding anything) and refused beyond `MAX_NODES`; then the
constructed value is copied so that no two places share a mapping or a list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from diffbench.errors import ConfigError

# Values (mappings, lists and scalars, aliases counted at every use) one document may expand to.
# The largest shipped suite has a few hundred; 100,000 stays a few tens of MB in memory.
MAX_NODES = 100_000


def load_yaml(text: str, where: str, max_nodes: int = MAX_NODES) -> Any:
    """The YAML document in `text`, safe-loaded, alias expansion bounded, nothing shared.

    Raises `ConfigError` naming `where` for a document that expands beyond `max_nodes` values
    or refers to itself; `yaml.YAMLError` for invalid YAML (callers word that themselves).
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ConfigError(f"{where}: YAML nested too deeply") from None
        if node is None:
            return None
        _check_size(node, where, max_nodes)
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    return unshared(data)


def read_mapping(path: Path, what: str, fix: str = "") -> dict[str, Any]:
    """The mapping in YAML file `path` ({} when empty); a file that is not UTF-8, not YAML or
    not a mapping is a ConfigError naming the file (and line), `what` it is and the `fix`."""
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML in {what}: {getattr(exc, 'problem', exc)}"
                          + (f"; {fix}" if fix else "")) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {what} is not a UTF-8 text file") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} must be a mapping of keys, found {type(data).__name__}")
    return data


def _check_size(root: yaml.Node, where: str, max_nodes: int) -> None:
    """Refuse a node graph whose expansion exceeds `max_nodes` values, or with a cycle."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            line = node.start_mark.line + 1 if node.start_mark else "?"
            raise ConfigError(f"{where}:{line}: a YAML alias refers to the value that contains "
                              "it; write the value out instead")
        active.add(key)
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        total = 1
        for child in children:
            total += size(child)
            if total > max_nodes:
                line = node.start_mark.line + 1 if node.start_mark else "?"
                raise ConfigError(
                    f"{where}:{line}: YAML anchors and aliases here expand to more than "
                    f"{max_nodes:,} values; write the values out (a suite needs no more)")
        active.discard(key)
        sizes[key] = total
        return total

    try:
        size(root)
    except RecursionError:
        raise ConfigError(f"{where}: YAML nested too deeply") from None


def unshared(value: Any) -> Any:
    """A copy of `value` in which no mapping or list is reachable by two paths (each alias and
    each merged mapping gets its own copy), so a change reaches exactly the place it names."""
    if isinstance(value, dict):
        return {k: unshared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unshared(v) for v in value]
    return value
