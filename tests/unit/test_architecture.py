"""The package's shape: no import cycles (also through imports inside functions), small modules,
and the library never imports the command line."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "speechbrain_dyncp"
MAX_LINES = 350
# Modules over MAX_LINES when the limit was set; the list may only shrink (issue "One clean house").
KNOWN_LARGE = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph():
    """``module -> {package modules it imports}``, every ``import`` statement counted (top level or not)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == "open":
                return stack[stack.index(v):] + [v]
            if v not in state:
                found = visit(v)
                if found:
                    return found
        stack.pop()
        state[u] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None


def test_nothing_imports_the_cli():
    users = [m for m, deps in import_graph().items() if "speechbrain_dyncp.cli" in deps]
    assert users == []


def test_modules_stay_small():
    large = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
             if len(p.read_text(encoding="utf-8").splitlines()) > MAX_LINES}
    assert large <= KNOWN_LARGE, f"new modules over {MAX_LINES} lines: {sorted(large - KNOWN_LARGE)}"


def test_readme_stays_a_front_door():
    """The README is for users (under 200 lines); the measurement record lives in docs/."""
    readme = PACKAGE.parent / "README.md"
    lines = readme.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines"
    for link in ("docs/results_real.md", "docs/results_synthetic.md", "recipes/DynCP/README.md"):
        assert link in readme.read_text(encoding="utf-8") and (PACKAGE.parent / link).is_file(), link
