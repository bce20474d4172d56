"""scripts/bootstrap.sh shows progress while pip works (its output goes to a log)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# pip's own lines, as a first install writes them (abridged)
PIP_OUTPUT = (
    "\n".join(
        [
            "Obtaining file:///work/nbp",
            "  Installing build dependencies: started",
            "  Installing build dependencies: finished with status 'done'",
        ]
        + [f"Collecting package{i}>=1.0" for i in range(1, 46)]
        + [
            "Building wheels for collected packages: nbp_assets",
            "Installing collected packages: a, b, c, d",
            "Successfully installed a-1 b-2 c-3 d-4",
        ]
    )
    + "\n"
)


@pytest.mark.skipif(shutil.which("awk") is None, reason="no awk")
def test_pip_output_becomes_a_few_progress_lines():
    done = subprocess.run(
        ["awk", "-f", str(REPO_ROOT / "scripts" / "pip-progress.awk")],
        input=PIP_OUTPUT,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line.split("] ", 1)[1] for line in done.stdout.splitlines()]
    assert lines == [
        "preparing the project's build (pip fetches its build tools)",
        "resolving dependencies: 1 packages so far (package1>=1.0)",
        "resolving dependencies: 20 packages so far (package20>=1.0)",
        "resolving dependencies: 40 packages so far (package40>=1.0)",
        "building nbp_assets",
        "resolved 45 packages; installing 4 (the longest step)",
        "installed 4 packages",
    ]
    assert all(line.startswith("  [") and "s] " in line for line in done.stdout.splitlines())  # elapsed seconds


def test_bootstrap_pipes_pip_through_the_progress_filter():
    script = (REPO_ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "| tee .venv/pip-install.log | awk -f scripts/pip-progress.awk" in script
