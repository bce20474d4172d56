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
from typing import Iterator

import dagster as dg
import pandas as pd

SOURCE_SCHEMA = "nbp_source"
WORK_SCHEMA = "nbp_work"
HISTORY_TABLE = "product_intelligence.next_best_product"
HISTORY_KEY = ("party_id", "rank", "evaluated_at")

# The seed's DDL: Snowflake gets NUMBER(8,6) and TIMESTAMP_NTZ (storage/snowflake.py);
# DuckDB has neither, DECIMAL(8,6) and TIMESTAMP are the same types there. Snowflake does
# not enforce the primary key: replace_slice keeps it by replacing a week in one transaction.
HISTORY_DDL = """
CREATE TABLE IF NOT EXISTS product_intelligence.next_best_product (
    party_id VARCHAR NOT NULL,
    jurisdiction VARCHAR NOT NULL,
    rank INT NOT NULL,
    product_id VARCHAR NOT NULL,
    score {number} NOT NULL,
    primary_signal VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL,
    evaluated_at {timestamp} NOT NULL,
    PRIMARY KEY (party_id, rank, evaluated_at)
)
"""


def sql_date(d: date | datetime) -> str:
    """A date literal. Only dates derived from partition keys are ever inlined."""
    if isinstance(d, datetime):
        return f"TIMESTAMP '{d:%Y-%m-%d %H:%M:%S}'"
    return f"DATE '{d:%Y-%m-%d}'"


class WarehouseResource(dg.ConfigurableResource):
    """Interface every warehouse implements; assets depend on this type only."""

    def query(self, sql: str) -> pd.DataFrame:
        raise NotImplementedError

    def table_exists(self, qualified_name: str) -> bool:
        raise NotImplementedError

    def column_names(self, qualified_name: str) -> set[str]:
        """Lower-case column names of a table (empty if the table does not exist)."""
        raise NotImplementedError

    def replace_slice(
        self, table: str, df: pd.DataFrame, where: str, ddl: str | None = None, key: tuple[str, ...] = ()
    ) -> int:
        """Delete the rows matching `where`, insert df, atomically. Creates the table if needed.

        `key` names the table's primary key, when it has one: implementations may then
        upsert instead of delete + insert (much cheaper where the key is an index)."""
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

    def describe(self) -> str:
        return f"duckdb:{self.database}"

    @contextmanager
    def _connect(self, read_only: bool = False) -> Iterator["duckdb.DuckDBPyConnection"]:
        import duckdb

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
            yield con
        finally:
            con.close()

    def query(self, sql: str) -> pd.DataFrame:
        with self._connect() as con:
            return con.sql(sql).df()

    def table_exists(self, qualified_name: str) -> bool:
        schema, name = qualified_name.split(".")
        with self._connect() as con:
            n = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [schema, name],
            ).fetchone()[0]
        return n > 0

    def column_names(self, qualified_name: str) -> set[str]:
        schema, name = qualified_name.split(".")
        with self._connect() as con:
            rows = con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
                [schema, name],
            ).fetchall()
        return {r[0].lower() for r in rows}

    def replace_slice(
        self, table: str, df: pd.DataFrame, where: str, ddl: str | None = None, key: tuple[str, ...] = ()
    ) -> int:
        schema = table.split(".")[0]
        with self._connect() as con:
            con.register("incoming", df)
            con.execute("BEGIN")
            try:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                if ddl:
                    con.execute(ddl.format(number="DECIMAL(8,6)", timestamp="TIMESTAMP"))
                else:
                    con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM incoming LIMIT 0")
                cols = ", ".join(f'"{c}"' for c in df.columns)
                if key:
                    # Deleting and re-inserting 3M keys of a primary-key index costs ~50 s in
                    # DuckDB; upserting and deleting only the vanished keys costs ~4 s.
                    keys = ", ".join(key)
                    con.execute(f"INSERT OR REPLACE INTO {table} ({cols}) SELECT {cols} FROM incoming")
                    con.execute(f"DELETE FROM {table} WHERE ({where}) AND ({keys}) NOT IN (SELECT {keys} FROM incoming)")
                else:
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
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
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
