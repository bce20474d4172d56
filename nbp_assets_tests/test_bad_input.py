"""Bad input, one clear line, everywhere (issue 20, point 5).

A mistake in what the user gives a command ends it with the reason on stderr (naming the
file or table, the column and example rows, row N being line N+1 of a CSV file), a
documented exit code and nothing written; never a traceback. The CLI runs here as a child
process, as a user would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from nbp_assets.model.weights import DEFAULT_WEIGHTS_FILE

REPO = Path(__file__).resolve().parents[1]


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NBP_WAREHOUSE_PATH", "NBP_DEPLOYMENT", "NBP_WEIGHTS_FILE")}
    env.update(NBP_HOME=str(home), NBP_DUCKDB_THREADS="1", PYTHONPATH=str(REPO), **extra)
    env.pop("DAGSTER_HOME", None)
    return env


def cli(home: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbp_assets", *args],
        cwd=REPO,
        env=env_for(home, **extra_env),
        capture_output=True,
        text=True,
        timeout=300,
    )


# ----------------------------------------------------------------------------- simulate --weights


def test_simulate_refuses_a_bad_weights_file_in_one_line_with_exit_2_and_writes_nothing(tmp_path):
    home = tmp_path / "home"
    text = pd.read_csv(DEFAULT_WEIGHTS_FILE, dtype=str, keep_default_na=False)
    text.loc[2, "weight"] = "high"  # data row 3: line 4 of the file
    bad = tmp_path / "bad.csv"
    text.to_csv(bad, index=False)
    cases = {
        "missing": (tmp_path / "nope.csv", "no such file"),
        "folder": (tmp_path, "is a folder, not a weights file"),
        "non-numeric": (bad, "column 'weight': decimal number expected [1 row(s)], e.g. row 3 (line 4): "),
    }
    for label, (path, says) in cases.items():
        run = cli(home, "simulate", "--weights", str(path), "--week", "2026-11-09")
        assert run.returncode == 2, (label, run.stderr)
        assert run.stderr.splitlines() == [run.stderr.strip()], (label, run.stderr)  # one line
        assert run.stderr.startswith(f"simulate: --weights {path}: "), (label, run.stderr)
        assert says in run.stderr, (label, run.stderr)
        assert "Traceback" not in run.stderr and "Error(" not in run.stderr, (label, run.stderr)
        assert run.stdout == ""
    assert "signal='" + text.loc[2, "signal"] + "', weight='high'" in run.stderr
    assert not home.exists()  # nothing written: no warehouse, no instance
