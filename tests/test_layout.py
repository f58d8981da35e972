"""The package's floors hold: each top-level package or module of plait imports only from floors below it (no two
import each other, even through others), nothing below the command line imports the verbs, no module grows past
400 lines. Imports inside functions count too."""

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "plait"
VERB_CALLERS = {"cli", "demo", "__init__"}  # the command line, the demo runner and the package face


def imported_modules(path: Path) -> list[str]:
    """Every `plait.…` module a file imports, at the top or inside a function."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:  # `from plait import api` too
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in names if name.startswith("plait.")]


def floors() -> dict[str, set[str]]:
    """Top-level part of plait (package or module) → the other top-level parts it imports."""
    graph = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        part = path.relative_to(PACKAGE).with_suffix("").parts[0]
        graph[part] |= {name.split(".")[1] for name in imported_modules(path)} - {part}
    return graph


def test_no_two_parts_of_plait_import_each_other():
    graph = floors()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            part = todo.pop()
            if part == goal:
                return True
            if part not in seen:
                seen.add(part)
                todo += graph.get(part, ())
        return False

    circles = sorted((a, b) for a in graph for b in graph[a] if reaches(b, a))
    assert circles == []
    assert {"data", "models", "tasks", "training"} & graph["settings"] == set()  # the schema never loads torch's floors
    assert "runs" in graph["api"] and "api" not in graph["runs"]


def test_only_the_command_line_and_the_demo_call_the_verbs():
    callers = set()
    for path in PACKAGE.rglob("*.py"):
        if "plait.api" in imported_modules(path):
            callers.add(path.relative_to(PACKAGE).with_suffix("").parts[0])
    assert callers <= VERB_CALLERS and "cli" in callers


def test_no_module_is_over_400_lines():
    sizes = {str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
             for path in PACKAGE.rglob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > 400} == {}
