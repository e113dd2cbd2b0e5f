"""Architecture rules read from the source: one place for metric facts, declared adapter hooks,
a light CLI, no import cycles, no internal import hidden behind ``except ImportError``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from diffbench.metrics.spec import all_specs

PACKAGE = Path(__file__).resolve().parent.parent / "diffbench"
# The one place a metric name is a key: the spec registry. Protocols name the metrics they
# define with their settings (that fact lives there and specs read it from there).
ALLOWED = {"registry.py"}
ALLOWED_DIRS = {"protocols"}


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return out


def _strings(nodes) -> list[str]:
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_metric_name_table_outside_the_spec_registry():
    names = {s.name for s in all_specs()} | {o.key for s in all_specs() for o in s.outputs}
    found = []
    for module, tree in modules().items():
        parts = module.split(".")
        if parts[-1] + ".py" in ALLOWED and len(parts) == 2 or ALLOWED_DIRS & set(parts):
            continue
        # A compute function returns its own outputs by key (prdc: precision, recall, density,
        # coverage), as the contract asks: a returned mapping is a value, not a table.
        returned = {id(n.value) for n in ast.walk(tree)
                    if isinstance(n, ast.Return) and isinstance(n.value, ast.Dict)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and id(node) in returned:
                continue
            if isinstance(node, ast.Dict):
                keys = _strings(node.keys)
            elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                keys = _strings(node.elts)
            else:
                continue
            hits = sorted(set(keys) & names)
            if len(hits) >= 3:
                found.append(f"{module}:{node.lineno}: {hits}")
    assert not found, "metric-name tables outside the spec registry:\n" + "\n".join(found)


def test_no_metric_name_dispatch_in_the_scoring_families():
    names = {s.name for s in all_specs()}
    found = []
    for module, tree in modules().items():
        if not module.startswith("diffbench.scoring"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and set(_strings(node.comparators)) & names:
                found.append(f"{module}:{node.lineno}")
    assert not found, f"string dispatch on metric names: {found}"


def test_adapter_hooks_are_declared_not_probed():
    from diffbench.adapters.base import Adapter

    hooks = {"check_keys", "sampler_stats", "describe", "check_task", "generate", "missing"}
    assert hooks <= set(dir(Adapter))
    found = []
    for module, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("hasattr", "getattr") and len(node.args) >= 2:
                target = ast.unparse(node.args[0])
                attr = node.args[1].value if isinstance(node.args[1], ast.Constant) else ""
                if "adapter" in target.lower() or attr in hooks:
                    found.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
    assert not found, f"adapter hooks probed instead of declared: {found}"


def test_internal_imports_are_never_guarded():
    found = []
    for module, tree in modules().items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Try):
                continue
            guards = [h for h in node.handlers if h.type is not None
                      and "ImportError" in ast.unparse(h.type)]
            internal = [n for n in ast.walk(ast.Module(node.body, [])) if isinstance(
                n, ast.ImportFrom) and (n.module or "").startswith("diffbench")]
            if guards and internal:
                found.append(f"{module}:{node.lineno}")
    assert not found, f"internal imports inside try/except ImportError: {found}"


def _body(node: ast.AST):
    """Every node under `node`, function bodies included, except `if TYPE_CHECKING:` blocks
    (types only: they never run)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for sub in child.orelse:
                yield sub
                yield from _body(sub)
            continue
        yield child
        yield from _body(child)


def _module_imports(module: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The diffbench modules `module` imports, at import time or lazily inside a function."""
    out = set()
    package = module if module + ".__init__" in known else module.rsplit(".", 1)[0]
    for sub in _body(tree):
        if isinstance(sub, ast.Import):
            out |= {a.name for a in sub.names if a.name.startswith("diffbench")}
        elif isinstance(sub, ast.ImportFrom):
            base = sub.module or ""
            if sub.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - sub.level + 1]
                                + ([base] if base else []))
            if base.startswith("diffbench"):
                out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                        for a in sub.names}
    return {m for m in out if m in known and m != module}


def _graph() -> dict[str, set[str]]:
    trees = modules()
    known = set(trees) | {f"{m}.__init__" for m in trees}
    return {m: _module_imports(m, t, known) for m, t in trees.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return cycles


def test_no_import_cycles():
    """No two modules import each other, directly or around a loop, even lazily."""
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_upward_imports():
    """Read each sub-package (``data``, ``scoring``, …) as one room: the rooms stand in floors,
    each importing only rooms below it. An import that runs back up (``refdata`` →
    ``data.npz`` while ``data.base`` → ``refdata``) closes a loop of rooms."""
    def room(module: str) -> str:
        return ".".join(module.split(".")[:2])

    rooms: dict[str, set[str]] = {}
    for module, deps in _graph().items():
        rooms.setdefault(room(module), set()).update(room(d) for d in deps
                                                     if room(d) != room(module))
    cycles = _cycles(rooms)
    assert not cycles, "imports that run back up: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_import_graph_reads_lazy_imports():
    """The rules above see an import inside a function (a lazy import must point down too)."""
    graph = _graph()
    assert "diffbench.registry" in graph["diffbench.refdata"]  # only inside open_dataset


def test_cli_imports_no_numpy_or_torch():
    code = ("import sys, diffbench.cli; "
            "heavy = [m for m in ('numpy', 'torch', 'pandas', 'scipy') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_one_file_hash_helper():
    """Files are hashed by `fsutil.file_sha256` (or fed to a digest by `fsutil.hash_file_into`):
    no other module feeds a file's bytes to a digest (bytes already read for another use, such
    as a PNG decoded or a text file parsed, may be hashed where they are)."""
    found = []
    for module, tree in modules().items():
        if module == "diffbench.fsutil":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(
                    ("sha256", ".update")) and any(
                    r in ast.unparse(a) for a in node.args for r in ("read_bytes(", ".read(")):
                found.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, ast.For) and ".read(" in ast.unparse(node.iter) \
                    and any(".update(" in ast.unparse(b) for b in node.body):
                found.append(f"{module}:{node.lineno}: a block-read digest loop")
    assert not found, f"file hashes outside fsutil.file_sha256: {found}"


def test_one_offline_check():
    """Only `diffbench.download.is_offline` reads DIFFBENCH_OFFLINE / HF_HUB_OFFLINE."""
    found = [f"{module}:{node.lineno}"
             for module, tree in modules().items() if module != "diffbench.download"
             for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and node.value in ("DIFFBENCH_OFFLINE",
                                                                  "HF_HUB_OFFLINE")]
    assert not found, f"offline checks outside diffbench.download.is_offline: {found}"


def test_no_package_name_is_shadowed_by_its_submodule():
    """Importing ``pkg.x`` rebinds ``pkg.x`` to the submodule: a function ``x`` in
    ``pkg/__init__.py`` (a registry target such as ``diffbench.features:x``) would vanish."""
    found = []
    for module, tree in modules().items():
        init = PACKAGE.parent / Path(*module.split(".")) / "__init__.py"
        if not init.is_file():
            continue
        subs = {p.stem for p in init.parent.glob("*.py")} | {
            p.name for p in init.parent.iterdir() if (p / "__init__.py").is_file()}
        found += [f"{module}.{n.name}" for n in tree.body
                  if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in subs]
    assert not found, f"names shadowed by submodules of the same name: {found}"


def test_no_private_name_is_imported_from_another_module():
    """A leading underscore means "this module's own": no other module imports it."""
    found = [f"{module}:{node.lineno}: {a.name} from {node.module}"
             for module, tree in modules().items() for node in _body(tree)
             if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("diffbench")
             for a in node.names if a.name.startswith("_") and a.name != "__version__"]
    assert not found, f"private names imported across modules: {found}"


def test_every_family_has_one_evaluator():
    from diffbench.metrics.spec import FAMILIES
    from diffbench.scoring.base import EVALUATORS

    assert tuple(EVALUATORS) == FAMILIES
