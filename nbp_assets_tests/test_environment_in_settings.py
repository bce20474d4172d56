"""Environment variables are read in settings.py only, and every dg.EnvVar takes its
variable's name from there: one place lists what configures a deployment."""

from __future__ import annotations

import ast
from pathlib import Path

import nbp_assets

PACKAGE = Path(nbp_assets.__file__).parent
# Benchmark and broker harnesses hand a changed copy of the environment to the processes
# they start; they configure nothing of a deployment.
HARNESSES = {"offers/stream/broker.py"}  # the development broker sets its child's environment
_OS_ENVIRONMENT = {"environ", "getenv", "putenv", "unsetenv", "environb", "getenvb"}


def environment_reads(tree: ast.AST) -> list[int]:
    """Lines that touch the process environment or name a dg.EnvVar by a literal."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in _OS_ENVIRONMENT:
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(alias.name in _OS_ENVIRONMENT for alias in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "EnvVar":
            if node.args and isinstance(node.args[0], ast.Constant):
                lines.append(node.lineno)
    return lines


def offenders(files: dict[str, str]) -> list[str]:
    return [
        f"{name}:{line}"
        for name, text in sorted(files.items())
        if name != "core/settings.py" and name not in HARNESSES
        for line in environment_reads(ast.parse(text))
    ]


def test_only_settings_reads_the_environment():
    files = {str(path.relative_to(PACKAGE)): path.read_text() for path in PACKAGE.rglob("*.py")}
    assert not offenders(files), "read these through nbp_assets.core.settings instead"


def test_a_read_elsewhere_is_caught():
    caught = offenders(
        {
            "a.py": "import os\nhome = os.environ.get('DAGSTER_HOME')\n",
            "b.py": "from os import getenv\n",
            "c.py": "import dagster as dg\nurl = dg.EnvVar('NBP_POSTGRES_URL')\n",
            "core/settings.py": "import os\nhome = os.environ['NBP_HOME']\n",
        }
    )
    assert caught == ["a.py:2", "b.py:1", "c.py:2"]
