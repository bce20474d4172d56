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
    (
        "foundation",
        (
            "core.settings",
            "core.redaction",
            "core.partitions",
            "core.sqltext",
            "core.sql",
            "ops.pools",
            "ops.dagster_compat",
            "ops.local_instance",
        ),
    ),
    # the signal names (imports nothing) sit with the contracts that promise them to every reader
    ("contract", ("contract", "fairness.contract")),
    # each domain's functional core: no Dagster, no storage
    (
        "model",
        (
            "weekly.eligibility",
            "weekly.signals",
            "weekly.ranking",
            "weekly.invariants",
            "weekly.suitability",
            "weekly.weights",
            "weekly.reasons",
            "weekly.explain",
            "weekly.local",
            "monitoring.model",
            "offers.model",
            "offers.rules",
            "fairness.maths",
            "fairness.config",
        ),
    ),
    (
        "storage",
        (
            "core",
            "publish.postgres",
            "publish.prefetch",
            "publish.queries",
            "publish.tables",
            "publish.encode",
            "publish.ddl",
            "publish.stage",
            "publish.locks",
            "publish.swap",
            "publish.grants",
        ),
    ),
    ("sources", ("sources", "offers.inputs", "offers.stream_state")),
    ("resources", ("resources",)),
    ("alerts", ("alerts", "fairness.alert", "fairness.guard", "fairness.report", "ops.alerts")),
    # the Dagster shell of each domain
    ("assets", ("weekly", "publish", "fairness", "monitoring", "simulation", "offers", "governance", "ops")),
    ("application", ("definitions", "cli", "__main__", "ops.run_summary")),
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
        ("contract.assets", "from nbp_assets.weekly.ranking import TOP_N\n"),
        ("core.snowflake", "def login():\n    from nbp_assets import resources\n"),
        ("alerts.messages", "from nbp_assets.fairness import asset\n"),
        ("core.settings", "import nbp_assets.weekly.weights\n"),
        ("fairness.maths", "from ..weekly import checks\n"),
    ],
)
def test_an_upward_import_is_caught(module, text):
    """The check can fail: each of these imports, added to the package, would be reported."""
    sources = {**package_sources(), module: text}
    assert [p for p in upward_imports(sources) if p.startswith(f"{module} ")]
