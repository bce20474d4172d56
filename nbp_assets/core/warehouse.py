"""The warehouse the weekly engine reads its inputs from and writes its history to.

Locally it is an embedded DuckDB file; in production it is Snowflake (same interface).
Assets talk to it only through `WarehouseResource`, so the deployment decides which one.

Schemas:
- nbp_source: the upstream inputs of the data contract (docs/data-contract.md).
- nbp_work: one table per intermediate asset, one slice per week (week_start column).
- product_intelligence: next_best_product, the weekly history with the seed's DDL.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import dagster as dg
import pandas as pd
import pyarrow as pa
from pydantic import PrivateAttr

from nbp_assets.contract.tables import HISTORY, Table
from nbp_assets.core.schemas import create_schema_if_missing

if TYPE_CHECKING:  # imported where used: the Snowflake deployment never loads DuckDB
    import duckdb

SOURCE_SCHEMA = "nbp_source"
WORK_SCHEMA = "nbp_work"
HISTORY_TABLE = HISTORY.name
HISTORY_KEY = HISTORY.key

# Declared once in contract/tables.py (columns, types, key); kept here under their old names.
HISTORY_DDL = HISTORY.ddl("duckdb")


def sql_date(d: date | datetime) -> str:
    """A date literal. Only dates derived from partition keys are ever inlined."""
    if isinstance(d, datetime):
        return f"TIMESTAMP '{d:%Y-%m-%d %H:%M:%S}'"
    return f"DATE '{d:%Y-%m-%d}'"


class WarehouseSession:
    """Statements run inside one open transaction of a warehouse (see WarehouseResource.transaction)."""

    def execute(self, sql: str) -> None:
        raise NotImplementedError

    def query(self, sql: str) -> pd.DataFrame:
        raise NotImplementedError

    def scalar(self, sql: str):
        return self.query(sql).iloc[0, 0]

    def memory_metadata(self) -> dict:
        """The engine's memory and spill right now (call it after the heavy statement)."""
        return {}


class _DuckDBSession(WarehouseSession):
    def __init__(self, con):
        self.con = con

    def execute(self, sql: str) -> None:
        self.con.execute(sql)

    def query(self, sql: str) -> pd.DataFrame:
        return self.con.sql(sql).df()

    def memory_metadata(self) -> dict:
        used = self.scalar("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()")
        spilled = self.scalar("SELECT coalesce(sum(size), 0) FROM duckdb_temporary_files()")
        limit = self.scalar("SELECT current_setting('memory_limit')")
        return {
            "warehouse_memory_mib": round(float(used) / 2**20, 1),
            "warehouse_spill_mib": round(float(spilled) / 2**20, 1),
            "warehouse_memory_limit": str(limit),
        }


class WarehouseResource(dg.ConfigurableResource):
    """Interface every warehouse implements; assets depend on this type only.

    The weekly model runs as SQL inside the warehouse (`transaction`); only small results
    (counts, failing examples) and the published top 3 (`record_batches`) leave it."""

    @property
    def dialect(self) -> str:
        raise NotImplementedError

    def shard_size(self) -> int | None:
        """At most this many customers per pass of a heavy weekly step (None: the whole bank
        in one pass, for an engine that scales out by itself)."""
        return None

    @contextmanager
    def transaction(self) -> Iterator[WarehouseSession]:
        """One transaction: committed when the block ends, rolled back if it raises, so a
        week's slice is replaced and checked as one unit (readers never see a failed week)."""
        raise NotImplementedError
        yield

    def record_batches(self, sql: str, rows_per_batch: int = 200_000) -> Iterator[pa.RecordBatch]:
        """A query's result as Arrow batches, one at a time (bounded memory)."""
        raise NotImplementedError

    def ensure_table(self, table: Table) -> None:
        """Create the declared table (and its schema) if it does not exist yet. A work table
        (derived, re-computable data) whose columns no longer match its declaration is
        recreated; any other table with other columns is an error, never silently changed."""
        present = self.column_names(table.name)
        if present and present != set(table.columns):
            if table.schema != WORK_SCHEMA:
                raise RuntimeError(
                    f"{table.name} has columns {sorted(present)}, but the declaration says {table.columns}"
                )
            with self.transaction() as tx:
                tx.execute(f"DROP TABLE {table.name}")
        with self.transaction() as tx:
            self._ensure_schema(tx, table.schema)
            tx.execute(table.ddl(self.dialect))

    def _ensure_schema(self, tx: WarehouseSession, schema: str) -> None:
        create_schema_if_missing(tx, schema, self.dialect)

    def query(self, sql: str) -> pd.DataFrame:
        raise NotImplementedError

    def scalar(self, sql: str):
        """The first value of a query's first row (a count, a date)."""
        return self.query(sql).iloc[0, 0]

    def counts(self, sql: str) -> dict[str, int]:
        """A (key, count) query as a dict, for the UI's metadata."""
        df = self.query(sql)
        return {str(k): int(v) for k, v in zip(df.iloc[:, 0], df.iloc[:, 1])}

    def table_exists(self, qualified_name: str) -> bool:
        raise NotImplementedError

    def column_names(self, qualified_name: str) -> set[str]:
        """Lower-case column names of a table (empty if the table does not exist)."""
        return set(self.column_types(qualified_name))

    def column_types(self, qualified_name: str) -> dict[str, str]:
        """Lower-case column name -> the engine's upper-case type name (empty if no table)."""
        raise NotImplementedError

    def replace_slice(
        self, table: str, df: pd.DataFrame, where: str, ddl: str | None = None, key: tuple[str, ...] = ()
    ) -> int:
        """Delete the rows matching `where`, insert df, atomically. Creates the table if needed.
        (`key`: the table's declared key; no engine here keeps an index on it.)"""
        raise NotImplementedError

    def replace_table(self, table: str, df: pd.DataFrame) -> int:
        """Replace a whole table (used to load source data)."""
        raise NotImplementedError

    def append_table(self, table: str, df: pd.DataFrame) -> int:
        """Append df to an existing table (a large load written in chunks)."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    @contextmanager
    def session(self) -> Iterator["WarehouseResource"]:
        """Calls made inside share one login, where the warehouse has logins (Snowflake)."""
        yield self


class DuckDBWarehouse(WarehouseResource):
    """The embedded local warehouse: one DuckDB file, no server to run."""

    database: str
    lock_timeout_seconds: float = 600.0
    # None: from settings (NBP_DUCKDB_*). With a memory limit DuckDB spills to temp_directory,
    # so the process stays bounded whatever the number of customers.
    memory_limit: Optional[str] = None
    threads: Optional[int] = None
    temp_directory: Optional[str] = None
    parties_per_shard: Optional[int] = None

    _shared: object | None = PrivateAttr(default=None)

    @property
    def dialect(self) -> str:
        return "duckdb"

    def describe(self) -> str:
        return f"duckdb:{self.database}"

    def shard_size(self) -> int | None:
        from nbp_assets.core import settings

        return self.parties_per_shard or settings.duckdb_parties_per_shard()

    @contextmanager
    def session(self) -> Iterator["DuckDBWarehouse"]:
        """Calls inside share one connection: opening the file and setting it up costs ~40 ms,
        and a weekly step makes dozens of small queries (checks, counts, metadata)."""
        if self._shared is not None:
            yield self
            return
        with self._connect(shared=False) as con:
            self._shared = con
            try:
                yield self
            finally:
                self._shared = None

    @contextmanager
    def _connect(self, read_only: bool = False, shared: bool = True) -> Iterator["duckdb.DuckDBPyConnection"]:
        import duckdb

        if shared and not read_only and self._shared is not None:
            yield self._shared
            return

        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        # DuckDB allows one writing process per file; concurrent runs (a backfill of
        # several weeks) wait their turn instead of failing.
        deadline = time.monotonic() + self.lock_timeout_seconds
        delay = 0.2
        while True:
            try:
                con = duckdb.connect(self.database, read_only=read_only)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        try:
            if not read_only:
                self._configure(con)
            yield con
        finally:
            con.close()

    def _configure(self, con) -> None:
        from nbp_assets.core import settings

        temp = Path(self.temp_directory or settings.duckdb_temp_dir())
        temp.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET memory_limit = '{self.memory_limit or settings.duckdb_memory_limit()}'")
        con.execute(f"SET threads = {int(self.threads or settings.duckdb_threads())}")
        con.execute(f"SET temp_directory = '{temp.as_posix()}'")
        # Row order of a table carries no meaning here; not keeping it lets large inserts stream.
        con.execute("SET preserve_insertion_order = false")

    @contextmanager
    def transaction(self) -> Iterator[WarehouseSession]:
        with self._connect() as con:
            con.execute("BEGIN")
            try:
                yield _DuckDBSession(con)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def record_batches(self, sql: str, rows_per_batch: int = 200_000) -> Iterator[pa.RecordBatch]:
        # its own connection: a reader left unfinished (a skipped publish) blocks its connection
        with self._connect(shared=False) as con:
            # in the order stored: the publish streams the week in its key's order (see nbp_ranked)
            con.execute("SET preserve_insertion_order = true")
            reader = con.sql(sql).to_arrow_reader(rows_per_batch)
            yield from reader

    def query(self, sql: str) -> pd.DataFrame:
        with self._connect() as con:
            return con.sql(sql).df()

    def table_exists(self, qualified_name: str) -> bool:
        schema, name = qualified_name.split(".")
        with self._connect() as con:
            n = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [schema, name],
            ).fetchall()[0][0]
        return n > 0

    def column_types(self, qualified_name: str) -> dict[str, str]:
        schema, name = qualified_name.split(".")
        with self._connect() as con:
            rows = con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
                [schema, name],
            ).fetchall()
        return {r[0].lower(): str(r[1]).upper() for r in rows}

    def replace_slice(
        self, table: str, df: pd.DataFrame, where: str, ddl: str | None = None, key: tuple[str, ...] = ()
    ) -> int:
        schema = table.split(".")[0]
        with self._connect() as con:
            con.register("incoming", df)
            con.execute("BEGIN")
            try:
                create_schema_if_missing(con, schema, "duckdb")
                if ddl:
                    con.execute(ddl.format(number="DECIMAL(8,6)", timestamp="TIMESTAMP"))
                else:
                    con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM incoming LIMIT 0")
                cols = ", ".join(f'"{c}"' for c in df.columns)
                # No index to maintain (keys are checked before a week is written): delete + insert.
                con.execute(f"DELETE FROM {table} WHERE {where}")
                con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM incoming")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("incoming")
        return len(df)

    def replace_table(self, table: str, df: pd.DataFrame) -> int:
        schema = table.split(".")[0]
        with self._connect() as con:
            con.register("incoming", df)
            create_schema_if_missing(con, schema, "duckdb")
            con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM incoming")
            con.unregister("incoming")
        return len(df)

    def append_table(self, table: str, df: pd.DataFrame) -> int:
        cols = ", ".join(f'"{c}"' for c in df.columns)
        with self._connect() as con:
            con.register("incoming", df)
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM incoming")
            con.unregister("incoming")
        return len(df)

    def replace_tables(
        self, tables: dict[str, pd.DataFrame], remove: tuple[str, ...] = (), progress=None
    ) -> dict[str, int]:
        """Replace several tables, and drop `remove`, as one unit: a single transaction on one
        connection (DuckDB's DDL is transactional), so readers, and the file after a process
        killed at any moment, have all the old tables or all the new ones, never a mix.
        `progress(table, rows)` is called as each table is written, before the commit."""
        schemas = sorted({t.split(".")[0] for t in (*tables, *remove)})
        with self._connect() as con:
            con.execute("BEGIN")
            try:
                for schema in schemas:
                    create_schema_if_missing(con, schema, "duckdb")
                for table, df in tables.items():
                    con.register("incoming", df)
                    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM incoming")
                    con.unregister("incoming")
                    if progress is not None:
                        progress(table, len(df))
                for table in remove:
                    con.execute(f"DROP TABLE IF EXISTS {table}")
                con.execute("COMMIT")
            except BaseException:
                try:
                    con.execute("ROLLBACK")
                except Exception:  # the transaction is gone already (a failed COMMIT): keep the first error
                    pass
                raise
        return {table: len(df) for table, df in tables.items()}
