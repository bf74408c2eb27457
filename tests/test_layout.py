"""The package layout a newcomer relies on: folders by role, no import cycle, a short top level."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_TOP_LEVEL_MODULES = 10


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_level_imports(path: Path, known: set[str]) -> set[str]:
    """edgeexec modules imported at module level (imports inside functions are deferred on purpose;
    ``if TYPE_CHECKING:`` blocks count)."""
    found: set[str] = set()
    body = ast.parse(path.read_text()).body
    # imports for type checking count: they are the same dependency, only deferred
    body += [n for node in body if isinstance(node, ast.If) for n in node.body]
    for node in body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found.update(n for n in names if n in known)
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in (ROOT / "edgeexec").rglob("*.py") if "example_dags" not in p.parts}
    known = set(paths)
    return {name: _module_level_imports(path, known) - {name} for name, path in paths.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ imported for a submodule is not an edge back to the importer
            if state.get(nxt) == 1 and not node.startswith(nxt + "."):
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_level_import_cycle_inside_edgeexec() -> None:
    assert _cycle(_graph()) is None, f"import cycle: {' -> '.join(_cycle(_graph()) or [])}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_edgeexec_top_level_stays_short() -> None:
    """Roles live in subpackages (airflow/, config/, store/, tokens/, gateway/, localstack/); the top
    level holds only the shared vocabulary, the entry point and the public shims."""
    top = sorted(p.name for p in (ROOT / "edgeexec").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_every_test_file_has_a_tier_and_the_readme_table_is_current() -> None:
    from tests.tiers import TIERS, render

    tests = ROOT / "tests"
    files = {p.name for p in tests.glob("test_*.py")} | {f"{d.name}/" for d in tests.iterdir() if (d / "__init__.py").exists()}
    assert files == set(TIERS), f"tests/tiers.py lacks or has extra: {files ^ set(TIERS)}"
    readme = (tests / "README.md").read_text()
    assert render(readme) == readme, "tests/README.md is stale: run `python -m tests.tiers`"
