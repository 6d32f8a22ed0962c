"""The package's import graph: the layers of ``medrl_lib`` in order (no module imports a layer above its own), no
module imports one that imports it back (at module level or inside a function), no module reaches for another's
private names, and no module is over 550 lines."""

import ast
import shutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "medrl_lib"


#: The layers of medrl_lib, bottom first (the README's module table): a module may import its own layer and the layers
#: below it, never one above.
LAYERS = ["common", "rl", "config", "data", "models", "scoring", "training", "experiments", "ops", "cli"]


def _modules(package: Path = PACKAGE) -> dict[str, Path]:
    out = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(modules: dict[str, Path]):
    """``{module: {imported module}}`` and the private names imported, from every ``from ... import`` line."""
    graph, private = {m: set() for m in modules}, []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):  # import medrl_lib.x.y (as z)
                graph[name] |= {a.name for a in node.names if a.name in modules}
                continue
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
    assert graph["medrl_lib.experiments.runs"] >= {"medrl_lib.training.launch", "medrl_lib.training.train"}  # the graph is read at all
    assert _cycle(graph) == []


def test_no_private_name_crosses_a_module():
    assert _imports(_modules())[1] == []


def _layer(module: str) -> int | None:
    """The index in :data:`LAYERS` of ``module``'s package (None for the package's own ``__init__``)."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else None


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a layer above the importer's, as ``importer -> imported``."""
    return sorted(f"{m} -> {n}" for m, targets in graph.items() for n in targets
                  if _layer(m) is not None and _layer(n) is not None and _layer(n) > _layer(m))


def test_every_module_sits_in_a_layer():
    stray = [m for m in _modules() if m != "medrl_lib" and m.split(".")[1] not in LAYERS]
    assert stray == []  # a new package is placed in LAYERS (and in the README's table)


def test_no_module_imports_a_layer_above_its_own():
    graph, _ = _imports(_modules())
    assert graph["medrl_lib.rl.rewards"] >= {"medrl_lib.common.checks", "medrl_lib.rl.completions"}  # read at all
    assert _upward(graph) == []


def test_the_rl_core_imports_nothing_but_common():
    graph, _ = _imports(_modules())
    core = {n for m, targets in graph.items() if m.startswith("medrl_lib.rl.") for n in targets}
    assert {n.split(".")[1] for n in core} <= {"common", "rl"}


@pytest.mark.parametrize("module, planted, found", [
    # a module-level import of the results store into the RL core
    ("rl/rewards.py", "from medrl_lib.experiments.results import Run\n", "medrl_lib.rl.rewards -> medrl_lib.experiments.results"),
    # an import inside a function (the usual way round a cycle) from data up to training
    ("data/splits.py", "def _f():\n    from medrl_lib.training import train\n", "medrl_lib.data.splits -> medrl_lib.training.train"),
    # a plain import statement from config up to the CLI
    ("config/profiles.py", "import medrl_lib.cli.main as cli\n", "medrl_lib.config.profiles -> medrl_lib.cli.main"),
])
def test_a_planted_upward_import_is_caught(tmp_path, module, planted, found):
    copy = tmp_path / "medrl_lib"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    (copy / module).write_text((copy / module).read_text() + "\n" + planted)
    assert _upward(_imports(_modules(copy))[0]) == [found]


def test_no_module_is_over_550_lines():
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > 550}
    assert long == {}
