"""The package's import graph: no module imports one that imports it back (at module level or inside a function),
and no module reaches for another's private names."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "medrl_lib"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(modules: dict[str, Path]):
    """``{module: {imported module}}`` and the private names imported, from every ``from ... import`` line."""
    graph, private = {m: set() for m in modules}, []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "medrl_lib":
                target = node.module
            else:
                continue
            subs = [a.name for a in node.names if f"{target}.{a.name}" in modules]
            graph[name] |= {f"{target}.{s}" for s in subs}
            if target in modules and len(subs) < len(node.names):
                graph[name].add(target)
            private += [f"{name}: {target}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__") and a.name not in subs]
        graph[name].discard(name)
    return graph, private


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` as a path, or ``[]``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str]:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        stack.pop()
        return []

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return []


def test_no_import_cycle():
    graph, _ = _imports(_modules())
    assert graph["medrl_lib.runs"] >= {"medrl_lib.launch", "medrl_lib.train"}  # the graph is read at all
    assert _cycle(graph) == []


def test_no_private_name_crosses_a_module():
    assert _imports(_modules())[1] == []
