"""The library's layers point one way, read from the source (ast; nothing is imported).

* ``mona_scale.engine`` imports no ``mona_scale.backbones`` (it finds backbones through
  ``engine/model_protocol.py``), at module level or inside a function;
* ``mona_scale.backbones`` and ``mona_scale.adapters`` import no ``mona_scale.engine`` and
  not each other (``mona_scale.modeling`` puts them together);
* nothing in ``mona_scale`` imports the repository's ``projects/`` or ``configs/``;
* there is no import cycle among the modules' module-level imports, nor through imports
  inside functions (a lazy import hides a cycle from Python, not from the reader).
"""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mona_scale"


def module_names(root: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of the package under ``root``."""
    names = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _module_level_nodes(tree: ast.Module):
    """Statements that run when the module is imported: the module body, including class
    bodies and ``if`` / ``try`` / ``with`` blocks, but not function bodies."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        stack.extend(ast.iter_child_nodes(node))


def imported_names(name: str, modules: dict[str, Path],
                   module_level_only: bool) -> set[str]:
    """Absolute names of what module ``name`` imports (``from a import b`` gives ``a.b``
    when ``a.b`` is a module of the package, else ``a``).

    Args:
        name: dotted module name.
        modules: :func:`module_names`.
        module_level_only: leave out imports inside function bodies.

    Returns:
        The imported module names (any package, not only ours).
    """
    tree = ast.parse(modules[name].read_text(), filename=str(modules[name]))
    nodes = _module_level_nodes(tree) if module_level_only else ast.walk(tree)
    package = name if _is_package(name, modules) else name.rpartition(".")[0]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in modules else source)
    return found


def import_graph(root: Path, module_level_only: bool) -> dict[str, set[str]]:
    """Edges between the package's modules: an import of ``a.b.c`` also runs the
    ``__init__`` of ``a.b`` and ``a`` unless the importer lives inside that package."""
    modules = module_names(root)
    graph = {}
    for name in modules:
        edges = set()
        for target in imported_names(name, modules, module_level_only):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                inside = name == prefix or name.startswith(prefix + ".")
                if prefix in modules and prefix != name and (i == len(parts) or not inside):
                    edges.add(prefix)
        graph[name] = edges
    return graph


def layer_violations(root: Path) -> list[str]:
    """Every import (module level or in a function) that crosses a layer the wrong way."""
    modules = module_names(root)
    forbidden = {  # importer package -> packages it must not import
        f"{PACKAGE}.engine": (f"{PACKAGE}.backbones",),
        f"{PACKAGE}.backbones": (f"{PACKAGE}.engine", f"{PACKAGE}.adapters"),
        f"{PACKAGE}.adapters": (f"{PACKAGE}.engine", f"{PACKAGE}.backbones"),
    }
    project_modules = {p.stem for d in ("projects", "configs") for p in (root / d).rglob("*.py")}
    problems = []
    for name in modules:
        targets = imported_names(name, modules, module_level_only=False)
        for importer, banned in forbidden.items():
            if name == importer or name.startswith(importer + "."):
                problems += [f"{name} imports {t}" for t in sorted(targets)
                             if any(t == b or t.startswith(b + ".") for b in banned)]
        problems += [f"{name} imports {t} (projects/ or configs/)" for t in sorted(targets)
                     if t.split(".")[0] in ("projects", "configs")
                     or (t.split(".")[0] != PACKAGE and t in project_modules)]
    return problems


def import_cycles(root: Path, module_level_only: bool = True) -> list[list[str]]:
    """Strongly connected groups (more than one module, or a module importing itself) of
    the import graph (Tarjan's algorithm)."""
    graph = import_graph(root, module_level_only)
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


# --------------------------------------------------------------- the checker on known graphs
def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_resolves_relative_imports_and_finds_a_cycle(tmp_path):
    root = _write(tmp_path, {
        f"{PACKAGE}/__init__.py": "",
        f"{PACKAGE}/a/__init__.py": "from .x import X\n",
        f"{PACKAGE}/a/x.py": "from ..b import y\nX = 1\n",
        f"{PACKAGE}/b/__init__.py": "",
        f"{PACKAGE}/b/y.py": "from mona_scale.a import x\n",
        f"{PACKAGE}/b/z.py": "def f():\n    from mona_scale.a import x\n",
    })
    graph = import_graph(root, module_level_only=True)
    assert graph[f"{PACKAGE}.a"] == {f"{PACKAGE}.a.x"}  # its own package is not an edge
    assert graph[f"{PACKAGE}.a.x"] == {f"{PACKAGE}.b", f"{PACKAGE}.b.y"}
    assert graph[f"{PACKAGE}.b.z"] == set()  # a function-level import is not module level
    assert import_cycles(root) == [[f"{PACKAGE}.a", f"{PACKAGE}.a.x", f"{PACKAGE}.b.y"]]


def test_checker_finds_layer_crossings_in_functions_too(tmp_path):
    root = _write(tmp_path, {
        f"{PACKAGE}/__init__.py": "",
        f"{PACKAGE}/engine/__init__.py": "",
        f"{PACKAGE}/engine/d.py": "def f():\n    from ..backbones import swin\n",
        f"{PACKAGE}/backbones/__init__.py": "",
        f"{PACKAGE}/backbones/swin.py": "import mona_scale.adapters.tuning\n",
        f"{PACKAGE}/adapters/__init__.py": "",
        f"{PACKAGE}/adapters/tuning.py": "from train_net import main\n",
        "projects/train_net.py": "",
    })
    assert layer_violations(root) == [
        f"{PACKAGE}.adapters.tuning imports train_net (projects/ or configs/)",
        f"{PACKAGE}.backbones.swin imports {PACKAGE}.adapters.tuning",
        f"{PACKAGE}.engine.d imports {PACKAGE}.backbones.swin",
    ]


# ------------------------------------------------------------------------ the real library
def test_layers_point_one_way():
    assert layer_violations(ROOT) == []


def test_no_module_level_import_cycle():
    assert import_cycles(ROOT) == []


def test_no_import_cycle_through_function_level_imports():
    """A lazy import hides a cycle from Python, not from the reader: none either."""
    assert import_cycles(ROOT, module_level_only=False) == []


@pytest.mark.parametrize("name", ["engine", "backbones", "adapters", "modeling", "data"])
def test_every_package_is_scanned(name):
    """The checker sees the library's files (a wrong root would pass vacuously)."""
    modules = module_names(ROOT)
    inside = [m for m in modules if m.startswith(f"{PACKAGE}.{name}.")]
    assert len(inside) >= 2 and all(os.path.isfile(modules[m]) for m in inside)
