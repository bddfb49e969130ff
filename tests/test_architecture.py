"""The package's layering: no import cycles, libraries free of protocol and CLI code, small modules.

The import graph is read from the source with :mod:`ast`, so imports inside functions (lazy
imports) count as much as those at the top of a module: a lazy import hides a cycle from Python,
not from this check.  ``import a.b`` and ``from a import b`` depend on module ``a.b`` (and
``from a import name`` on ``a`` when ``name`` is not a module); importing a submodule is not
counted as depending on its parent package, as in import-linter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "vpf_spiking"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
MAX_LINES = 500

#: Modules still over MAX_LINES, each with the reason; empty when the rule holds everywhere.
TODO_LONG_MODULES: dict[str, str] = {}

#: Import cycles still present (as sorted module lists); empty when the rule holds everywhere.
TODO_CYCLES: list[list[str]] = []

#: Modules outside vpf_spiking.cli that still hold argparse code (each to move into vpf_spiking.cli).
TODO_PARSER_CODE: list[str] = []

#: The layers, lowest first (docs/architecture.md): a module may import its own layer and those
#: below, never one above. Names are the package's top-level modules and subpackages.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("errors", "progress", "resources", "io", "_version", "model", "networks", "objective",
              "marginal_flow", "sampling", "generation", "idx", "user_data", "data", "checkpoint", "plotting")),
    ("engines", ("trainers", "optim", "spiking", "stdp")),
    ("evaluation", ("evaluation", "estimator")),
    ("protocols", ("protocols",)),
    ("sweep", ("sweep",)),
    ("cli", ("cli",)),
]

#: Upward imports still present, as (importer, imported); empty when the rule holds everywhere.
TODO_UPWARD: list[tuple[str, str]] = []

#: Packages that are libraries: they may not import the protocol or CLI layers.
LIBRARIES = (f"{PACKAGE}.evaluation", f"{PACKAGE}.spiking")
UPPER_LAYERS = (f"{PACKAGE}.protocols", f"{PACKAGE}.cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


MODULES = _modules()


def _known(name: str) -> str | None:
    """The longest prefix of ``name`` that is a module of the package (None outside it)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _imports(module: str, path: Path) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                origin = ".".join(anchor + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # "from pkg import sub" depends on the submodule when there is one, else on pkg
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in MODULES else origin for a in node.names]
        else:
            continue
        out.update(t for t in map(_known, targets) if t is not None and t != module)
    return out


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_import_graph_is_read():
    # guards the check itself: a few edges that must be there
    assert f"{PACKAGE}.model" in GRAPH[PACKAGE]
    assert f"{PACKAGE}.errors" in GRAPH[f"{PACKAGE}.model"]
    assert any(m.startswith(f"{PACKAGE}.protocols") for m in GRAPH[f"{PACKAGE}.cli.run"])


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    unexpected = [c for c in cycles if c not in TODO_CYCLES]
    assert not unexpected, "import cycles (lazy imports included):\n" + "\n".join(" <-> ".join(c) for c in unexpected)
    stale = [c for c in TODO_CYCLES if c not in cycles]
    assert not stale, f"cycles fixed, remove them from TODO_CYCLES: {stale}"


@pytest.mark.parametrize("library", LIBRARIES)
def test_libraries_import_no_protocol_or_cli_code(library):
    bad = {m: sorted(t for t in targets if t.startswith(UPPER_LAYERS))
           for m, targets in GRAPH.items() if m == library or m.startswith(library + ".")}
    bad = {m: t for m, t in bad.items() if t}
    assert not bad, f"library modules importing protocols/CLI: {bad}"


def test_argparse_only_in_the_cli_package():
    users = sorted(m for m, p in MODULES.items() if not m.startswith(f"{PACKAGE}.cli")
                   and "argparse" in _external_imports(p) and m not in TODO_PARSER_CODE)
    assert not users, f"argparse used outside vpf_spiking.cli: {users}"


def test_parsers_are_built_only_in_the_cli_package():
    # add_argument / add_parser calls on a parser handed in from outside count as CLI code too
    calls = {"add_argument", "add_argument_group", "add_parser", "add_subparsers", "set_defaults"}
    users = set()
    for m, p in MODULES.items():
        if m.startswith(f"{PACKAGE}.cli"):
            continue
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in calls:
                users.add(m)
    unexpected = sorted(users - set(TODO_PARSER_CODE))
    assert not unexpected, f"parser code outside vpf_spiking.cli: {unexpected}"
    stale = sorted(set(TODO_PARSER_CODE) - users)
    assert not stale, f"no parser code left, remove from TODO_PARSER_CODE: {stale}"


def test_no_dynamic_imports_of_the_package():
    # importlib.import_module / __import__ would hide edges from the checks above
    found = []
    for m, p in MODULES.items():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in ("import_module", "__import__"):
                    found.append(f"{m}:{node.lineno}")
    assert not found, f"dynamic imports: {found}"


def _external_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_over_500_lines():
    lengths = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    long = {m: n for m, n in lengths.items() if n > MAX_LINES and m not in TODO_LONG_MODULES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
    stale = [m for m in TODO_LONG_MODULES if lengths.get(m, 0) <= MAX_LINES]
    assert not stale, f"now short enough, remove from TODO_LONG_MODULES: {stale}"


def _layer(module: str) -> int:
    """Index of ``module``'s layer; the package root (the public facade) sits above them all."""
    if module == PACKAGE:
        return len(LAYERS)
    top = module.split(".")[1]
    for i, (_, names) in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_architecture.py "
                         "and to docs/architecture.md")


def test_every_module_is_in_a_layer_and_imports_only_downward():
    upward = sorted((m, t) for m, targets in GRAPH.items() for t in targets if _layer(t) > _layer(m))
    unexpected = [e for e in upward if e not in TODO_UPWARD]
    assert not unexpected, "imports of a higher layer:\n" + "\n".join(f"{m} -> {t}" for m, t in unexpected)
    stale = [e for e in TODO_UPWARD if e not in upward]
    assert not stale, f"fixed, remove from TODO_UPWARD: {stale}"


def test_the_layers_are_documented():
    page = (ROOT.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name, modules in LAYERS:
        assert f"**{name}**" in page, f"docs/architecture.md does not describe the {name} layer"
        for mod in modules:
            if (ROOT / mod).is_dir() or (ROOT / f"{mod}.py").exists():
                assert f"`{mod}" in page, f"docs/architecture.md does not place {mod}"
