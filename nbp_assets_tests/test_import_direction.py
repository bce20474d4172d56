"""Imports point down the layers of docs/architecture.md, never up.

Every module of the package is mapped to a layer by its dotted name (the longest prefix
in LAYERS wins, so a domain folder such as fairness/ places each of its files in the
layer of its job); a module may import its own layer and the layers below. Imports inside
functions count too: a deferred import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import nbp_assets

PACKAGE = Path(nbp_assets.__file__).parent

# Lowest first. Keep in step with the picture in docs/architecture.md.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("settings", "redaction", "partitions", "ops_pools", "core")),
    # model.vocabulary (the signal names, imports nothing) lives with the model it names and sits
    # with the contracts that promise those names to every reader
    ("contract", ("contract", "fairness.contract", "model.vocabulary")),
    ("model", ("model", "fairness.maths", "fairness.config", "explain")),
    ("storage", ("storage",)),
    ("sources", ("sources",)),
    ("resources", ("resources",)),
    ("alerts", ("alerts", "fairness.alert", "fairness.guard", "fairness.report")),
    ("assets", ("assets", "weekly", "fairness", "stream", "simulate")),
    ("application", ("definitions", "cli", "__main__", "run_summary", "bench", "offers_bench")),
]
RANK = {layer: rank for rank, (layer, _) in enumerate(LAYERS)}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    """The layer of a module name relative to the package ('' is the package itself)."""
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return best[1] if best else None


def imported_modules(tree: ast.AST, module: str) -> set[str]:
    """Package modules imported anywhere in the tree, relative to the package."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level] if module else []
                names = [".".join([*base, *([node.module] if node.module else [])])]
            else:
                names = [node.module or ""]
            # `from nbp_assets.fairness import maths` depends on the module fairness.maths, not
            # on whatever else the folder holds
            submodules = [f"{names[0]}.{alias.name}" for alias in node.names]
            names = [n for n in submodules if _is_module(_relative(n, node.level))] or names
        else:
            continue
        found |= {_relative(name, getattr(node, "level", 0)) for name in names}
    return {name for name in found if name and _is_module(name)}


def _relative(name: str, level: int) -> str:
    """A dotted name relative to the package ('' for a name outside it)."""
    if level:
        return name
    if name == "nbp_assets" or name.startswith("nbp_assets."):
        return name.removeprefix("nbp_assets").removeprefix(".")
    return ""


def _is_module(name: str) -> bool:
    if not name:
        return False
    path = PACKAGE.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def upward_imports(sources: dict[str, str]) -> list[str]:
    """'importer (layer) -> imported (layer)' for every import that points up a layer."""
    problems = []
    for module, text in sorted(sources.items()):
        own = layer_of(module)
        for imported in sorted(imported_modules(ast.parse(text), module)):
            target = layer_of(imported)
            if own and target and RANK[target] > RANK[own]:
                problems.append(f"{module} ({own}) imports {imported} ({target})")
    return problems


def package_sources() -> dict[str, str]:
    return {module_name(path): path.read_text() for path in PACKAGE.rglob("*.py")}


def test_every_module_has_a_layer():
    unmapped = sorted(m for m in package_sources() if m and layer_of(m) is None)
    assert not unmapped, f"add these modules to LAYERS (and docs/architecture.md): {unmapped}"


def test_no_import_points_up():
    problems = upward_imports(package_sources())
    assert not problems, "imports that point up a layer:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "module, text",
    [
        ("contract.assets", "from nbp_assets.model.ranking import TOP_N\n"),
        ("storage.snowflake", "def login():\n    from nbp_assets import resources\n"),
        ("alerts.messages", "from nbp_assets.fairness import asset\n"),
        ("settings", "import nbp_assets.model.weights\n"),
        ("fairness.maths", "from ..assets import checks\n"),
    ],
)
def test_an_upward_import_is_caught(module, text):
    """The check can fail: each of these imports, added to the package, would be reported."""
    sources = {**package_sources(), module: text}
    assert [p for p in upward_imports(sources) if p.startswith(f"{module} ")]
