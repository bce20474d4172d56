"""`python -m nbp_assets load DIR` is all or nothing, even when the process is killed.

The source tables a load writes are one set: a warehouse holding some tables of the new
load and some of the old one would be ranked by the next weekly run as if it were one bank.
Each kill test starts the real CLI in a child process, stops it at a chosen point of its
writes (or lets it run and kills it after a delay), SIGKILLs it, and then reads the
warehouse as the weekly run would: every source table must be the old load's or every
one the new load's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from nbp_assets.cli import main
from nbp_assets.contract.inputs import SOURCE_TABLES
from nbp_assets.core.warehouse import SOURCE_SCHEMA, DuckDBWarehouse
from nbp_assets.sources.synthetic import generate

REPO = Path(__file__).resolve().parents[1]
END_WEEK = date(2026, 11, 9)

# The child: the real CLI, with duckdb.connect wrapped so the test can stop it at a chosen
# statement. Nothing in nbp_assets is patched: the wrapper only watches the SQL it sends.
#   first-table : before the second write to nbp_source (the first table is written)
#   commit      : before the COMMIT of a connection that wrote to nbp_source
#   committed   : right after that COMMIT returned
#   none        : never stop; only report (marker file) when the first write starts
CHILD = textwrap.dedent("""
    import re, sys, time
    from pathlib import Path

    import duckdb

    folder, marker, stop_at = sys.argv[1:4]
    WRITE = re.compile(r"\\s*(CREATE\\s+OR\\s+REPLACE\\s+TABLE|INSERT\\s+INTO|DROP\\s+TABLE(\\s+IF\\s+EXISTS)?)\\s+nbp_source\\.", re.I)
    state = {"writes": 0}

    def stop(where):
        Path(marker).write_text(where)
        time.sleep(600)  # the test kills us here

    class Watched:
        def __init__(self, con):
            self._con, self._wrote = con, False

        def __getattr__(self, name):
            return getattr(self._con, name)

        def execute(self, sql, *args, **kwargs):
            if WRITE.match(sql):
                if state["writes"] == 0 and stop_at == "none":
                    Path(marker).write_text("first write")
                if state["writes"] == 1 and stop_at == "first-table":
                    stop("before the second table")
                state["writes"] += 1
                self._wrote = True
            is_commit = sql.strip().upper() == "COMMIT" and self._wrote
            if is_commit and stop_at == "commit":
                stop("before COMMIT")
            result = self._con.execute(sql, *args, **kwargs)
            if is_commit and stop_at == "committed":
                stop("after COMMIT")
            return result

    real_connect = duckdb.connect
    duckdb.connect = lambda *a, **k: Watched(real_connect(*a, **k))

    from nbp_assets.cli import main
    main(["load", folder])
""")


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NBP_WAREHOUSE_PATH", "NBP_DEPLOYMENT", "NBP_WEIGHTS_FILE")}
    env.update(NBP_HOME=str(home), NBP_DUCKDB_THREADS="1", PYTHONPATH=str(REPO))
    return env


def write_folder(folder: Path, tables: dict[str, pd.DataFrame]) -> Path:
    folder.mkdir()
    for name, df in tables.items():
        df.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def source_tables(home: Path, monkeypatch) -> dict[str, pd.DataFrame | None]:
    """Every source table as the weekly run would read it (None: the table does not exist)."""
    monkeypatch.setenv("NBP_HOME", str(home))
    warehouse = DuckDBWarehouse(database=str(home / "warehouse.duckdb"))
    out: dict[str, pd.DataFrame | None] = {}
    for name in SOURCE_TABLES:
        table = f"{SOURCE_SCHEMA}.{name}"
        if not warehouse.table_exists(table):
            out[name] = None
            continue
        df = warehouse.query(f"SELECT * FROM {table}")
        out[name] = df.sort_values(list(df.columns)).reset_index(drop=True)
    return out


def same(a: pd.DataFrame | None, b: pd.DataFrame | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and a.equals(b)


def which_load(state: dict, old: dict, new: dict) -> str:
    """'old' or 'new' if every table is that load's; else the mix, table by table."""
    if all(same(state[t], old[t]) for t in SOURCE_TABLES):
        return "old"
    if all(same(state[t], new[t]) for t in SOURCE_TABLES):
        return "new"
    return "mixed: " + ", ".join(
        f"{t}=" + ("old" if same(state[t], old[t]) else "new" if same(state[t], new[t]) else "neither")
        for t in SOURCE_TABLES
    )


@pytest.fixture(scope="module")
def banks(tmp_path_factory):
    """Two different loads: the old one has customer_rote, the new one does not (so the new
    set has no customer_rote table at all). Every table differs between the two."""
    root = tmp_path_factory.mktemp("banks")
    old = generate(30, 1, end_week=END_WEEK, history_weeks=2, products=12)
    new = generate(45, 2, end_week=END_WEEK, history_weeks=3, products=16)
    del new["customer_rote"]
    for name in SOURCE_TABLES:
        assert name not in new or len(old[name]) != len(new[name]), name
    return write_folder(root / "old", old), write_folder(root / "new", new)


@pytest.fixture(scope="module")
def expected(banks, tmp_path_factory):
    """What the warehouse holds after a complete load of each folder (loaded in-process)."""
    old_folder, new_folder = banks
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        for var in ("NBP_WAREHOUSE_PATH", "NBP_DEPLOYMENT", "NBP_WEIGHTS_FILE"):
            mp.delenv(var, raising=False)
        for label, folders in (("old", [old_folder]), ("new", [old_folder, new_folder])):
            home = tmp_path_factory.mktemp(f"expected-{label}")
            mp.setenv("NBP_HOME", str(home))
            for folder in folders:
                main(["load", str(folder)])
            out[label] = source_tables(home, mp)
    assert out["old"]["customer_rote"] is not None and out["new"]["customer_rote"] is None
    return out["old"], out["new"]


def loaded_home(tmp_path: Path, old_folder: Path, monkeypatch) -> Path:
    """A fresh warehouse holding the old load."""
    home = tmp_path / "home"
    monkeypatch.setenv("NBP_HOME", str(home))
    for var in ("NBP_WAREHOUSE_PATH", "NBP_DEPLOYMENT", "NBP_WEIGHTS_FILE"):
        monkeypatch.delenv(var, raising=False)
    main(["load", str(old_folder)])
    return home


def start_load(home: Path, folder: Path, marker: Path, stop_at: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), str(marker), stop_at],
        cwd=REPO,
        env=child_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(marker: Path, child: subprocess.Popen, timeout: float = 180.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text():
            return marker.read_text()
        if child.poll() is not None:
            out, err = child.communicate()
            pytest.fail(f"the load ended (exit {child.returncode}) before reaching the stop point:\n{out}\n{err}")
        time.sleep(0.01)
    child.kill()
    pytest.fail("the load did not reach the stop point in time")


def sigkill(child: subprocess.Popen) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize(
    "stop_at, survivor",
    [
        ("first-table", "old"),  # killed with one table written: before the fix, that table was new
        ("commit", "old"),  # every table written, not committed
        ("committed", "new"),  # killed right after the commit: the new set is durable
    ],
)
def test_killed_load_leaves_the_old_set_or_the_new_set(tmp_path, monkeypatch, banks, expected, stop_at, survivor):
    old_folder, new_folder = banks
    old, new = expected
    home = loaded_home(tmp_path, old_folder, monkeypatch)
    assert which_load(source_tables(home, monkeypatch), old, new) == "old"

    child = start_load(home, new_folder, tmp_path / "marker", stop_at)
    wait_for(tmp_path / "marker", child)
    sigkill(child)

    assert which_load(source_tables(home, monkeypatch), old, new) == survivor

    # The killed load leaves nothing behind that stops the next one (no lock, no damage).
    main(["load", str(new_folder)])
    assert which_load(source_tables(home, monkeypatch), old, new) == "new"


@pytest.mark.parametrize("delay", [0.05])  # the deterministic kill points are the test above
def test_load_killed_at_any_moment_of_its_writes_is_all_or_nothing(tmp_path, monkeypatch, banks, expected, delay):
    # No stop point: the child writes (and commits) at full speed and is killed `delay`
    # seconds after its first write started, wherever it is (writing, committing, done).
    old_folder, new_folder = banks
    old, new = expected
    home = loaded_home(tmp_path, old_folder, monkeypatch)

    child = start_load(home, new_folder, tmp_path / "marker", "none")
    wait_for(tmp_path / "marker", child)
    time.sleep(delay)
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=60)

    assert which_load(source_tables(home, monkeypatch), old, new) in ("old", "new")


def test_load_that_fails_midway_changes_nothing(tmp_path, monkeypatch, banks, expected):
    """In-process: the second table's write raises; the first table's write is rolled back."""
    from nbp_assets.sources import loader

    old_folder, new_folder = banks
    old, new = expected
    home = loaded_home(tmp_path, old_folder, monkeypatch)
    calls = []

    def failing(name, rows):
        calls.append(name)
        if len(calls) == 2:
            raise RuntimeError("disk full")

    warehouse = DuckDBWarehouse(database=str(home / "warehouse.duckdb"))
    with pytest.raises(RuntimeError, match="disk full"):
        loader.store(warehouse, loader.load_directory(new_folder), progress=failing)
    assert which_load(source_tables(home, monkeypatch), old, new) == "old"


def test_load_says_what_to_run_next(tmp_path, monkeypatch, banks, capsys):
    old_folder, _ = banks
    loaded_home(tmp_path, old_folder, monkeypatch)
    out = capsys.readouterr().out.rstrip().splitlines()
    assert f"{SOURCE_SCHEMA}.customers" in "\n".join(out)
    # generate(end_week=2026-11-09, history_weeks=2): snapshots dated 2026-11-08 and 2026-11-15
    assert out[-2:] == [
        "next: python -m nbp_assets materialize --week 2026-11-09",
        "      (earlier weeks: python -m nbp_assets backfill 2026-11-02 2026-11-09)",
    ]


# ---------------------------------------------------------------- Snowflake (fakesnow)
# DDL commits by itself in Snowflake, so its replace_tables does every DDL step first and
# then one DML-only transaction. fakesnow answers from an in-process DuckDB: it cannot show a
# killed session, but a load stopped before its COMMIT (an error) leaves what a kill leaves.

SNOWFLAKE_ENV = {
    "SNOWFLAKE_ACCOUNT": "nbp-test-account",
    "SNOWFLAKE_USER": "NBP_LOADER",
    "SNOWFLAKE_PASSWORD": "Nbp-Test-Pa55w0rd-l0ad",
    "SNOWFLAKE_WAREHOUSE": "NBP_WH",
    "SNOWFLAKE_DATABASE": "NBP_LOAD_TEST",
}


@pytest.fixture
def snowflake(monkeypatch):
    fakesnow = pytest.importorskip("fakesnow")
    from nbp_assets.resources import snowflake_warehouse

    for var in (
        "SNOWFLAKE_PRIVATE_KEY",
        "SNOWFLAKE_PRIVATE_KEY_PATH",
        "SNOWFLAKE_PRIVATE_KEY_PASSWORD",
        "SNOWFLAKE_ROLE",
    ):
        monkeypatch.delenv(var, raising=False)
    for var, value in SNOWFLAKE_ENV.items():
        monkeypatch.setenv(var, value)
    with fakesnow.patch():
        yield snowflake_warehouse(resolved=True)


def row_counts(warehouse) -> dict[str, int | None]:
    return {
        name: int(warehouse.query(f"SELECT count(*) AS n FROM {SOURCE_SCHEMA}.{name}")["n"].iloc[0])
        if warehouse.table_exists(f"{SOURCE_SCHEMA}.{name}")
        else None
        for name in SOURCE_TABLES
    }


def stop_at_second_table(name, rows):
    if name != next(iter(SOURCE_TABLES)):
        raise RuntimeError("stopped before COMMIT")


@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_snowflake_load_is_one_transaction(snowflake, banks):
    from nbp_assets.sources.loader import load_directory, store

    old_folder, new_folder = banks
    old, new = load_directory(old_folder), load_directory(new_folder)
    old_rows = {name: len(old.tables.get(name, ())) for name in SOURCE_TABLES}
    with snowflake.session():
        store(snowflake, old)
        assert row_counts(snowflake) == old_rows

        with pytest.raises(RuntimeError, match="before COMMIT"):
            store(snowflake, new, progress=stop_at_second_table)
        assert row_counts(snowflake) == old_rows  # customers, written first, rolled back too

        store(snowflake, new)
        # customer_rote is not in the new folder: emptied in the same transaction, which the
        # weekly run reads as "not provided" (no snapshot), as it would read a missing table.
        assert row_counts(snowflake) == {name: len(new.tables.get(name, ())) for name in SOURCE_TABLES}
        got = snowflake.query(f"SELECT * FROM {SOURCE_SCHEMA}.customers ORDER BY party_id, valid_from")
        want = new.tables["customers"].sort_values(["party_id", "valid_from"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got[list(want.columns)], want, check_dtype=False)


@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_snowflake_first_load_stopped_before_commit_is_refused_by_the_weekly_run(snowflake, banks):
    from nbp_assets.contract.validation import ContractViolation
    from nbp_assets.core.partitions import Week
    from nbp_assets.sources import week_inputs
    from nbp_assets.sources.loader import load_directory, store

    _, new_folder = banks
    week = Week.from_key(END_WEEK.isoformat())
    with snowflake.session():
        with pytest.raises(RuntimeError, match="before COMMIT"):
            store(snowflake, load_directory(new_folder), progress=stop_at_second_table)
        # The tables this load created hold only their placeholder row; the weekly run refuses them.
        assert set(row_counts(snowflake).values()) == {1, None}
        with pytest.raises(ContractViolation, match="party_id"):
            week_inputs.customers(snowflake, week)
        with pytest.raises(ContractViolation):
            week_inputs.holdings(snowflake, week)
        with pytest.raises(week_inputs.MissingInput, match="no snapshot"):
            week_inputs.snapshot(snowflake, "eligibility", week)

        store(snowflake, load_directory(new_folder))  # the next load replaces the placeholders
        week_inputs.customers(snowflake, week)


@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_snowflake_table_without_a_loaded_column_is_refused_before_any_write(snowflake, banks):
    from nbp_assets.sources.loader import load_directory, store

    _, new_folder = banks
    with snowflake.session():
        snowflake.query(f"CREATE SCHEMA IF NOT EXISTS {SOURCE_SCHEMA}")
        snowflake.query(f"CREATE TABLE {SOURCE_SCHEMA}.customers (party_id VARCHAR)")
        with pytest.raises(RuntimeError, match=f"nothing was written.*{SOURCE_SCHEMA}.customers: jurisdiction"):
            store(snowflake, load_directory(new_folder))
        assert {n for n in row_counts(snowflake).values()} == {0, None}
        assert row_counts(snowflake)["product_register"] is None


def test_a_load_forgets_the_demo_banks_first_week(tmp_path, monkeypatch, banks, capsys):
    """The first week `demo` recorded describes the demo's bank, not the loaded data."""
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "first_week").write_text("2026-11-02\n")
    home = loaded_home(tmp_path, banks[0], monkeypatch)
    assert not (home / "first_week").exists()
    assert f"removed {home / 'first_week'} (the demo bank's first week)" in capsys.readouterr().out
