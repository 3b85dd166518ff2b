"""The shape of the code: small modules and functions, no private imports across subpackages, no
import cycles, and no text that points outside the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "latentshape"
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60
DATA_MODULES = {"_radial_null_table.py"}  # a generated numeric table, not code to read


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, str]]:
    """(module, imported name) for every latentshape import of ``name``, outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                   for node in ast.walk(block)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, ast.ImportFrom):
            continue
        base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
        target = ".".join(base + ([node.module] if node.module else []))
        if target.split(".")[0] != "latentshape":
            continue
        for alias in node.names:
            module = f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target
            found.append((module, alias.name))
    return found


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else ""


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_functions_are_small(name):
    path = MODULES[name]
    if path.name in DATA_MODULES:
        return
    lines = path.read_text().count("\n")
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{name}.{node.name} has {length} lines"


def test_no_private_name_is_imported_across_subpackages():
    offenders = []
    for name, path in MODULES.items():
        for module, imported in _imports(name, path):
            private = imported.startswith("_") or any(p.startswith("_") for p in module.split(".")[1:])
            if private and _subpackage(module) != _subpackage(name) and not imported.startswith("__"):
                offenders.append(f"{name} imports {imported} from {module}")
    assert offenders == []


def test_no_import_cycles():
    graph = {name: {m for m, _ in _imports(name, path) if m in MODULES and m != name and not m.startswith(name + ".")}
             for name, path in MODULES.items()}
    cycles = []

    def visit(node: str, stack: list[str], state: dict[str, int]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                # a package importing its own submodules, and they importing the package, is not a cycle
                if not all(a.startswith(b + ".") or b.startswith(a + ".") for a, b in zip(cycle, cycle[1:])):
                    cycles.append(" -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, stack, state)
        stack.pop()
        state[node] = 2

    state: dict[str, int] = {}
    for name in graph:
        if name not in state:
            visit(name, [], state)
    assert cycles == []


# The spec's section numbers and file name are upper case ("DESIGN 3.4", "DESIGN.md"); docs/allorder_design.md is ours.
OUTSIDE = re.compile(r"DESIGN\s*\d|(?<![\w/])DESIGN\.md|shared/|(?i:seeds?/\d|\bseeds? 00\d|\bsession\s*\d|\bissue\s*\d)")


def test_no_text_points_outside_the_repository():
    files = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *PACKAGE.rglob("*.py"),
             *ROOT.glob("benchmarks/*.py"), *ROOT.glob("scripts/*.py"), *ROOT.glob("examples/*.py")]
    hits = [f"{path.relative_to(ROOT)}:{i}: {line.strip()[:80]}"
            for path in files for i, line in enumerate(path.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert hits == []
