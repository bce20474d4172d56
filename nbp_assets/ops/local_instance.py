"""The CLI's local Dagster instance ($NBP_HOME/dagster_home): opened by one process at a time.

Dagster's SQLite storages create their tables and stamp alembic_version on first use with no
lock between processes (dagster-io/dagster#27390). Two commands opening a fresh home together
could both stamp a storage, one with Dagster's head revision, the other, finding the tables
just created, with LAST_KNOWN_STAMPED_SQLITE_ALEMBIC_REVISION: two rows, after which every
instance fails with "Version table 'alembic_version' has more than one head present".

open_instance() creates (and so creates, stamps and migrates the storages of) the instance
under an flock on DAGSTER_HOME/.nbp_instance.lock, and first repairs a storage left in that
state by an earlier race: its tables were created at head (create_all), so the head row is
kept and the other dropped. Rows of which none is the head are not guessed at: the command
stops with one line naming the file and the way out.
"""

from __future__ import annotations

import fcntl
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

# The SQLite files the default local storages stamp (run, event log index, schedule storage).
SQLITE_FILES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")
LOCK_FILE = ".nbp_instance.lock"


class InstanceBroken(SystemExit):
    """The instance cannot be opened and is not repaired here: exit code 2, the reason on stderr."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.code = 2


@contextmanager
def creation_lock(home: str | Path) -> Iterator[None]:
    """Held while one process creates, migrates or repairs the instance in `home`."""
    with open(Path(home) / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def _dagster_head() -> str:
    from alembic.script import ScriptDirectory
    from dagster._core.storage.runs.sqlite import sqlite_run_storage
    from dagster._core.storage.sql import get_alembic_config

    # The run, event log and schedule storages share one alembic script directory.
    return ScriptDirectory.from_config(get_alembic_config(sqlite_run_storage.__file__)).as_revision_number("head")


def repair_alembic_versions(home: str | Path) -> list[str]:
    """Repair each SQLite storage in `home` whose alembic_version holds more than one row;
    what was repaired, a line each. Raises InstanceBroken when none of the rows is the head."""
    repaired = []
    for name in SQLITE_FILES:
        path = Path(home) / name
        if not path.exists():
            continue
        with closing(sqlite3.connect(path, timeout=30)) as conn:
            try:
                rows = sorted(row[0] for row in conn.execute("SELECT version_num FROM alembic_version"))
            except sqlite3.OperationalError:  # not stamped yet: Dagster does it
                continue
            if len(rows) <= 1:
                continue
            head = _dagster_head()
            if head not in rows:
                raise InstanceBroken(
                    f"the Dagster instance cannot be opened: {path} has {len(rows)} rows in alembic_version "
                    f"({', '.join(rows)}), none of them Dagster's head {head} (two processes created it at once, "
                    f"dagster-io/dagster#27390): keep the row of the revision its tables are at "
                    f"(sqlite3 {path} \"DELETE FROM alembic_version WHERE version_num <> '<that revision>'\") "
                    f"or move {Path(home)} away to start an empty instance"
                )
            with conn:
                conn.execute("DELETE FROM alembic_version WHERE version_num <> ?", (head,))
            repaired.append(
                f"repaired {path}: alembic_version held {', '.join(rows)} (two processes created the instance "
                f"at once, dagster-io/dagster#27390); kept Dagster's head {head}"
            )
    return repaired


@contextmanager
def open_instance(home: str | Path):
    """The Dagster instance of DAGSTER_HOME (`home`), created or repaired under the lock."""
    import dagster as dg

    with creation_lock(home):
        try:
            repaired = repair_alembic_versions(home)
        except InstanceBroken as broken:
            print(broken.args[0], file=sys.stderr, flush=True)  # SystemExit(2) prints nothing itself
            raise
        for line in repaired:
            print(line, file=sys.stderr, flush=True)
        instance = dg.DagsterInstance.get()
    with instance:
        yield instance
