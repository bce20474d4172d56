"""Functions of one concern: no function of the package runs over ~80 lines, outside the two
places where length is the content (the synthetic bank's generator and the CLI's argument
table). A long function is where unrelated jobs hide; split it by what each part does."""

from __future__ import annotations

import ast
from pathlib import Path

import nbp_assets

PACKAGE = Path(nbp_assets.__file__).parent
LIMIT = 80
LONG_BY_NATURE = {
    ("sources/synthetic.py", "_customers"),  # one column after another of the synthetic bank
    ("sources/synthetic.py", "_chunk"),
    ("cli.py", "_main"),  # the argument table: one add_argument after another
}


def long_functions(files: dict[str, str], limit: int = LIMIT) -> list[str]:
    found = []
    for name, text in sorted(files.items()):
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit and (name, node.name) not in LONG_BY_NATURE:
                    found.append(f"{name}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_runs_over_80_lines():
    files = {str(p.relative_to(PACKAGE)): p.read_text() for p in PACKAGE.rglob("*.py")}
    assert not long_functions(files), "split these by concern:\n" + "\n".join(long_functions(files))


def test_a_long_function_is_caught():
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    assert long_functions({"a.py": f"def f():\n{body}\n"}) == [f"a.py:1 f ({LIMIT + 1} lines)"]
