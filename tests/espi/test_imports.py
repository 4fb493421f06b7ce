"""The engine's modules import one another one way only: no circle (issue 9, section 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import scwadd_espi

PACKAGE = Path(scwadd_espi.__file__).parent


def _imports(path: Path) -> set[str]:
    """The scwadd_espi modules ``path`` imports, at any depth (a lazy import is still a cycle)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "scwadd_espi":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("scwadd_espi."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("scwadd_espi."):
                    found.add(alias.name.split(".")[1])
    return found


def test_no_import_circle() -> None:
    graph = {path.stem: _imports(path) for path in PACKAGE.glob("*.py")}
    assert {"parser", "_split", "_reading_scan", "_elements"} <= graph.keys()
    # Depth-first search; a module met again while still on the stack closes a circle.
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, set()) - {"__init__"}):
            if state.get(target) == 1:
                circle = [*trail[trail.index(target) :], target] if target in trail else trail
                raise AssertionError(f"import circle: {' -> '.join(circle)}")
            if target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_split_reader_does_not_import_the_parser() -> None:
    assert "parser" not in _imports(PACKAGE / "_split.py")
    assert "parser" not in _imports(PACKAGE / "_reading_scan.py")
