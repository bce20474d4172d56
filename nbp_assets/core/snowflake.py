"""Snowflake as the warehouse of a production deployment (same interface as DuckDB).

Importing this module loads dagster-snowflake and the Snowflake connector (several
seconds), so only the production resources import it; the local path never does.

Identifiers: our SQL leaves table and column names unquoted, so Snowflake folds them to
upper case like the tables other systems create. Where this module writes DDL or column
lists it quotes the upper-case name instead ("GROUP"): the same identifier, and reserved
words such as the fairness report's `group` column stay valid.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

import dagster as dg
import pandas as pd
from dagster_snowflake import SnowflakeResource
from pandas.api.types import (
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_float_dtype,
    is_integer_dtype,
)
from pydantic import PrivateAttr

from nbp_assets.core.redaction import redact
from nbp_assets.core.schemas import create_schema_if_missing
from nbp_assets.core.settings import SNOWFLAKE_CREDENTIALS, ConfigurationError
from nbp_assets.core.warehouse import WORK_SCHEMA, WarehouseResource, WarehouseSession

# snowflake.connector.constants.FIELD_TYPES codes, as found in cursor.description
_FIXED, _REAL, _DATE, _TIMESTAMP, _TIMESTAMP_NTZ = 0, 1, 3, 4, 8


class SnowflakeUnavailable(ConfigurationError):
    """Snowflake refused the login or cannot be reached; names account and user, never a secret."""


class MissingTables(ConfigurationError):
    """Tables a run needs are not visible in Snowflake; raised before anything is written."""


def _quoted(column: str) -> str:
    return '"' + column.upper().replace('"', '""') + '"'


def _column_type(series: pd.Series) -> str:
    if is_bool_dtype(series):
        return "BOOLEAN"
    if is_integer_dtype(series):
        return "NUMBER(38,0)"
    if is_float_dtype(series):
        return "FLOAT"
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return "TIMESTAMP_TZ"
    if is_datetime64_any_dtype(series):
        return "TIMESTAMP_NTZ"  # our timestamps are zone-naive bank wall time
    return "VARCHAR"


def columns_ddl(df: pd.DataFrame) -> str:
    return ", ".join(f"{_quoted(c)} {_column_type(df[c])}" for c in df.columns)


def _split(table: str) -> tuple[str, str]:
    schema, name = table.split(".")
    return schema.upper(), name.upper()


def _frame(cursor) -> pd.DataFrame:
    """A result as DuckDB would give it: lower-case names, int64/float64/datetime64 columns."""
    description = cursor.description
    names = [d.name.lower() for d in description]
    df = cursor.fetch_pandas_all()
    if df.shape[1] != len(names):  # some connector versions return an empty result without columns
        df = pd.DataFrame({name: pd.Series(dtype=object) for name in names})
    df.columns = names
    for meta, name in zip(description, names):
        column = df[name]
        if (meta.type_code == _FIXED and (meta.scale or 0) > 0) or meta.type_code == _REAL:
            df[name] = pd.to_numeric(column, errors="coerce").astype("float64")
        elif meta.type_code == _FIXED:
            numbers = pd.to_numeric(column)
            df[name] = numbers.astype("Int64" if numbers.isna().any() else "int64")
        elif meta.type_code in (_DATE, _TIMESTAMP, _TIMESTAMP_NTZ):
            df[name] = pd.to_datetime(column).astype("datetime64[ns]")
    return df


class _SnowflakeSession(WarehouseSession):
    def __init__(self, cursor):
        self.cursor = cursor

    def execute(self, sql: str) -> None:
        self.cursor.execute(sql)

    def query(self, sql: str) -> pd.DataFrame:
        self.cursor.execute(sql)
        return _frame(self.cursor)


# What a run needs read once it has logged in, registered by whoever put it off until then
# (resources.py: the weights table), so that loading the definitions never logs in.
RUN_START_HOOKS: list[Callable[["SnowflakeWarehouse"], None]] = []


class SnowflakeWarehouse(WarehouseResource):
    """The bank's Snowflake warehouse: upstream inputs (nbp_source), the weekly work tables
    (nbp_work) and the next-best-product history (product_intelligence). Credentials come
    from environment variables and are resolved only when a run starts."""

    snowflake: SnowflakeResource
    required_tables: list[str] = []  # a run does not start unless every one is visible

    _stack: ExitStack | None = PrivateAttr(default=None)
    _session: object | None = PrivateAttr(default=None)

    def describe(self) -> str:
        return f"snowflake account {self.snowflake.account}, database {self.snowflake.database}"

    # ------------------------------------------------------------------ connections

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Fail before the first step writes anything: login, then the tables a run needs.
        # One login serves the whole run (or sensor tick); teardown closes it.
        self._stack = ExitStack()
        self._session = self._login(self._stack)
        if context.run is None:  # a sensor tick, not a run: it checks what it reads itself
            return
        try:
            self.check_required_tables()
            for hook in RUN_START_HOOKS:
                hook(self)
        except Exception:
            self.teardown_after_execution(context)
            raise

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        stack, self._stack, self._session = self._stack, None, None
        if stack is not None:
            stack.close()

    def _login(self, stack: ExitStack):
        try:
            return stack.enter_context(self.snowflake.get_connection())
        except Exception as exc:  # connector errors, an unreadable private key, a bad config value
            stack.close()
            raise SnowflakeUnavailable(self._login_failure(exc)) from None

    def _login_failure(self, exc: Exception) -> str:
        sf = self.snowflake
        message = " ".join(str(exc).split()) or type(exc).__name__
        message = redact(message, (sf.password, sf.private_key, sf.private_key_password))
        if isinstance(exc, ValueError) and (sf.private_key or sf.private_key_path):
            message = f"the private key (SNOWFLAKE_PRIVATE_KEY / _PATH / _PASSWORD) cannot be loaded: {message}"
        role = f", role {sf.role}" if sf.role else ""
        extra = sf.additional_snowflake_connection_args or {}
        host = f"{extra.get('host') or sf.account + '.snowflakecomputing.com'}:{extra.get('port') or 443}"
        return (
            f"cannot log in to Snowflake account {sf.account} as user {sf.user}{role} "
            f"(host {host}, warehouse {sf.warehouse}, database {sf.database}): {message}. "
            f"Check {', '.join(('SNOWFLAKE_ACCOUNT', 'SNOWFLAKE_USER', *SNOWFLAKE_CREDENTIALS))}."
        )

    @contextmanager
    def session(self) -> Iterator["SnowflakeWarehouse"]:
        if self._session is not None:  # already in one (a run, or an outer session)
            yield self
            return
        stack = ExitStack()
        self._session = self._login(stack)
        try:
            yield self
        finally:
            # closed as a normal exit even after an error: dagster-snowflake's get_connection
            # only closes the connection on that path (a failed transaction was rolled back)
            self._session = None
            stack.close()

    @contextmanager
    def _connection(self) -> Iterator:
        with self.session():
            yield self._session

    @property
    def dialect(self) -> str:
        return "snowflake"

    # ------------------------------------------------------------------ the week, in Snowflake

    @contextmanager
    def transaction(self) -> Iterator[WarehouseSession]:
        # DDL commits implicitly in Snowflake: callers create tables (ensure_table) before.
        with self._connection() as conn:
            cursor = conn.cursor()
            try:
                cursor.execute("BEGIN")
                try:
                    yield _SnowflakeSession(cursor)
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                cursor.execute("COMMIT")
            finally:
                cursor.close()

    def ensure_table(self, table) -> None:
        with self._connection() as conn:
            cursor = conn.cursor()
            try:
                self._ensure_schema(cursor, table.schema)
                cursor.execute(table.ddl(self.dialect))
            finally:
                cursor.close()

    def record_batches(self, sql: str, rows_per_batch: int = 200_000):
        import pyarrow as pa

        with self._connection() as conn:
            cursor = conn.cursor()
            try:
                cursor.execute(sql)
                names = [d.name.lower() for d in cursor.description]
                if hasattr(cursor, "fetch_arrow_batches"):  # the connector: Arrow result chunks as they arrive
                    for table in cursor.fetch_arrow_batches():
                        yield from table.rename_columns(names).to_batches(rows_per_batch)
                    return
                while rows := cursor.fetchmany(rows_per_batch):  # fakesnow (tests) has only the DB-API
                    yield pa.RecordBatch.from_pandas(pd.DataFrame(rows, columns=names), preserve_index=False)
            finally:
                cursor.close()

    # ------------------------------------------------------------------ reads

    def query(self, sql: str) -> pd.DataFrame:
        with self._connection() as conn:
            cursor = conn.cursor()
            try:
                cursor.execute(sql)
                return _frame(cursor)
            finally:
                cursor.close()

    def _names(self, sql: str, *params: str) -> set[str]:
        with self._connection() as conn:
            cursor = conn.cursor()
            try:
                cursor.execute(sql, params)
                return {row[0] for row in cursor.fetchall()}
            finally:
                cursor.close()

    def table_exists(self, qualified_name: str) -> bool:
        schema, name = _split(qualified_name)
        return bool(
            self._names(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                schema,
                name,
            )
        )

    def column_types(self, qualified_name: str) -> dict[str, str]:
        schema, name = _split(qualified_name)
        with self._connection() as conn:
            cursor = conn.cursor()
            try:
                cursor.execute(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                    (schema, name),
                )
                return {str(n).lower(): str(t).upper() for n, t in cursor.fetchall()}
            finally:
                cursor.close()

    def check_required_tables(self) -> None:
        """Every table in required_tables visible to this login, else one error naming the missing ones."""
        present: dict[str, set[str]] = {}
        for schema in sorted({_split(t)[0] for t in self.required_tables}):  # one query per schema
            present[schema] = self._names(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", schema
            )
        missing = [t for t in self.required_tables if _split(t)[1] not in present[_split(t)[0]]]
        if missing:
            raise MissingTables(
                f"{self.describe()}: required table(s) missing or not visible to this role: {', '.join(missing)}; "
                "nothing was written"
            )

    # ------------------------------------------------------------------ writes

    def _ensure_schema(self, cursor, schema: str) -> None:
        create_schema_if_missing(cursor, schema, "snowflake")

    @contextmanager
    def _staged(self, conn, df: pd.DataFrame) -> Iterator[str]:
        """df in a temporary table of nbp_work (dropped afterwards); yields its name.

        The name is left unqualified: the session's schema is nbp_work while it exists."""
        from snowflake.connector import pandas_tools  # looked up at call time, so test doubles apply

        cursor = conn.cursor()
        self._ensure_schema(cursor, WORK_SCHEMA)
        # write_pandas stages into the session's schema: the work schema, never the history's.
        cursor.execute(f"USE SCHEMA {WORK_SCHEMA}")
        stage = f"NBP_STAGE_{uuid.uuid4().hex[:12].upper()}"
        cursor.execute(f"CREATE TEMPORARY TABLE {stage} ({columns_ddl(df)})")
        try:
            if len(df):
                frame = df.reset_index(drop=True).rename(columns=str.upper)
                pandas_tools.write_pandas(conn, frame, stage, quote_identifiers=True, use_logical_type=True)
            yield stage
        finally:
            cursor.execute(f"DROP TABLE IF EXISTS {stage}")
            cursor.close()

    def replace_slice(
        self, table: str, df: pd.DataFrame, where: str, ddl: str | None = None, key: tuple[str, ...] = ()
    ) -> int:
        # `key` is not needed: Snowflake keeps no index to maintain, so delete + insert of a
        # week is as cheap as an upsert, and primary keys are not enforced there anyway.
        schema, _ = _split(table)
        columns = ", ".join(_quoted(c) for c in df.columns)
        with self._connection() as conn:
            cursor = conn.cursor()
            try:
                self._ensure_schema(cursor, schema)
                if not self.table_exists(table):
                    cursor.execute(
                        ddl.format(number="NUMBER(8,6)", timestamp="TIMESTAMP_NTZ")
                        if ddl
                        else f"CREATE TABLE IF NOT EXISTS {table} ({columns_ddl(df)})"
                    )
                with self._staged(conn, df) as stage:
                    # DDL commits implicitly in Snowflake, so all of it happened above: this
                    # transaction holds only the delete and the insert, readers see one or the other week.
                    cursor.execute("BEGIN")
                    try:
                        cursor.execute(f"DELETE FROM {table} WHERE {where}")
                        cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage}")
                        cursor.execute("COMMIT")
                    except Exception:
                        cursor.execute("ROLLBACK")
                        raise
            finally:
                cursor.close()
        return len(df)

    def replace_table(self, table: str, df: pd.DataFrame) -> int:
        schema, _ = _split(table)
        with self._connection() as conn:
            cursor = conn.cursor()
            try:
                self._ensure_schema(cursor, schema)
                with self._staged(conn, df) as stage:
                    # one statement: readers see the old table or the new one, never an empty one
                    cursor.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {stage}")
            finally:
                cursor.close()
        return len(df)

    def append_table(self, table: str, df: pd.DataFrame) -> int:
        columns = ", ".join(_quoted(c) for c in df.columns)
        with self._connection() as conn:
            cursor = conn.cursor()
            try:
                with self._staged(conn, df) as stage:
                    cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage}")
            finally:
                cursor.close()
        return len(df)

    def replace_tables(
        self, tables: dict[str, pd.DataFrame], remove: tuple[str, ...] = (), progress=None
    ) -> dict[str, int]:
        """Replace several tables, and empty `remove`, as one unit: readers, and the warehouse
        after a client killed at any moment, have all the old rows or all the new ones.

        DDL commits by itself in Snowflake, so one CREATE OR REPLACE per table cannot be one
        transaction. Every DDL step therefore comes first and changes no row a reader sees: the
        frames go to temporary stage tables, and a table that does not exist yet is created
        holding one all-NULL placeholder row. Then one transaction holds only DML: per table a
        DELETE and an INSERT from its stage, and a DELETE of each table in `remove` (emptied,
        not dropped: DROP would commit). A session killed before COMMIT never commits it.

        A table this created but did not fill keeps its placeholder, a row with a NULL key and
        NULL dates, so the weekly run refuses it: its contract check fails on that row, or a
        snapshot table has no snapshot. An existing table without one of the frame's columns is
        refused before anything is written: adding the column would give the old rows NULLs,
        and NULL can mean something (valid_to NULL = still current).
        `progress(table, rows)` is called as each table is written, before the commit."""
        present = {table: self.column_names(table) for table in tables}
        lacking = {
            table: [c for c in df.columns if c.lower() not in present[table]]
            for table, df in tables.items()
            if present[table]
        }
        lacking = {table: columns for table, columns in lacking.items() if columns}
        if lacking:
            raise RuntimeError(
                f"{self.describe()}: nothing was written; existing table(s) lack columns the load "
                "writes (add them, or drop the table): " + "; ".join(f"{t}: {', '.join(c)}" for t, c in lacking.items())
            )
        with self._connection() as conn, ExitStack() as stack:
            cursor = conn.cursor()
            stack.callback(cursor.close)
            for schema in sorted({_split(t)[0] for t in (*tables, *remove)}):
                self._ensure_schema(cursor, schema)
            stages = {table: stack.enter_context(self._staged(conn, df)) for table, df in tables.items()}
            for table, df in tables.items():
                if not present[table]:
                    cursor.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns_ddl(df)})")
                    cursor.execute(f"INSERT INTO {table} ({_quoted(df.columns[0])}) VALUES (NULL)")
            emptied = [table for table in remove if self.table_exists(table)]
            cursor.execute("BEGIN")
            try:
                for table, df in tables.items():
                    columns = ", ".join(_quoted(c) for c in df.columns)
                    cursor.execute(f"DELETE FROM {table}")
                    cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {stages[table]}")
                    if progress is not None:
                        progress(table, len(df))
                for table in emptied:
                    cursor.execute(f"DELETE FROM {table}")
                cursor.execute("COMMIT")
            except BaseException:
                try:
                    cursor.execute("ROLLBACK")
                except Exception:  # keep the first error
                    pass
                raise
        return {table: len(df) for table, df in tables.items()}
