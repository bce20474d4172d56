"""The CLI's local Dagster instance ($NBP_HOME/dagster_home) survives two commands started at once.

Dagster's SQLite storages create their tables and stamp alembic_version on first use with no
lock between processes (dagster-io/dagster#27390): two processes opening a fresh home together
could both stamp it, leaving two rows, after which every instance failed with "Version table
'alembic_version' has more than one head present". Real CLI processes (`pools`, which opens
the instance and needs no data), no mocks.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import dagster as dg
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SQLITE_FILES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")
OLDER_REVISION = "5771160a95ad"  # dagster._core.storage.sqlite.LAST_KNOWN_STAMPED_SQLITE_ALEMBIC_REVISION


def pools(home: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "NBP_DEPLOYMENT")}
    env["NBP_HOME"] = str(home)
    return subprocess.Popen(
        [sys.executable, "-m", "nbp_assets", "pools"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def versions(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return sorted(row[0] for row in conn.execute("SELECT version_num FROM alembic_version"))


def test_two_cold_commands_at_once_leave_one_alembic_version(tmp_path):
    for attempt in range(3):
        home = tmp_path / f"home{attempt}"
        both = [pools(home), pools(home)]
        for process in both:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
        for name in SQLITE_FILES:
            assert len(versions(home / "dagster_home" / name)) == 1, (
                attempt,
                name,
                versions(home / "dagster_home" / name),
            )


def test_a_home_with_two_alembic_versions_is_repaired_or_named(tmp_path):
    home = tmp_path / "home"
    (home / "dagster_home").mkdir(parents=True)
    with dg.DagsterInstance.from_config(str(home / "dagster_home")):  # creates and stamps the storages
        pass
    runs_db = home / "dagster_home" / "history" / "runs.db"
    (head,) = versions(runs_db)
    with closing(sqlite3.connect(runs_db)) as conn, conn:  # what the race left behind
        conn.execute("INSERT INTO alembic_version VALUES (?)", (OLDER_REVISION,))

    repaired = pools(home)
    out, err = repaired.communicate(timeout=120)
    assert repaired.returncode == 0, err
    assert f"repaired {runs_db}: alembic_version held {head}, {OLDER_REVISION}" in err, err
    assert versions(runs_db) == [head]

    # Two rows neither of which is Dagster's head: not guessed at, but named with the way out.
    with closing(sqlite3.connect(runs_db)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = 'aaaaaaaaaaaa'")
        conn.execute("INSERT INTO alembic_version VALUES (?)", (OLDER_REVISION,))
    named = pools(home)
    out, err = named.communicate(timeout=120)
    assert named.returncode == 2
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(
            f"the Dagster instance cannot be opened: {runs_db} has 2 rows in alembic_version (5771160a95ad, aaaaaaaaaaaa)"
        )
    ), err
