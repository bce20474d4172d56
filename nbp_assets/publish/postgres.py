"""The apps' copy of this week's next-best-products: product_intelligence.nbp_current.

The offer engine, agent assist and app cards look up one customer at a time (primary key
party_id, rank). The table always holds exactly one week, the top products per customer.
A publish swaps a whole week in atomically: an app sees last week or this week, never a
mix, never an empty or missing table, and an older week (a late backfill) never replaces
a newer one.

A publish streams the week (a DataFrame or Arrow record batches straight from the
warehouse) batch by batch into a staging table, validating each batch on the way, and
swaps it in under a lock it waits for only briefly at a time (LOCK_TIMEOUT_SECONDS), so
an app session that keeps the table open delays the publish, not the other apps.

The apps' role nbp_app_reader is protected by privilege, not by its sessions' read-only
default (which it may switch off, even for its later sessions): SELECT on what it reads,
USAGE on the schema, no TEMP. Every lock a publish waits on is waited for with a timeout,
and a timed-out wait names the session that holds it; publishers serialise on a table lock
an app cannot take (an advisory lock can be taken by any role).
"""

from __future__ import annotations

import io
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Iterator

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from nbp_assets.core.redaction import redact
from nbp_assets.core.schemas import create_schema_if_missing
from nbp_assets.publish.prefetch import prefetched

log = logging.getLogger(__name__)

SCHEMA, TABLE = "product_intelligence", "nbp_current"
COLUMNS = ["party_id", "jurisdiction", "rank", "product_id", "score", "primary_signal", "model_version", "evaluated_at"]
_TEXT = ["party_id", "jurisdiction", "product_id", "primary_signal", "model_version"]
_DTYPES = {c: object for c in _TEXT} | {"rank": "int32", "score": "float64", "evaluated_at": "datetime64[ns]"}
# Filled per row by COPY; model_version and evaluated_at are one value per week (defaults).
_COPIED = [c for c in COLUMNS if c not in ("model_version", "evaluated_at")]
# party_id in byte order (COLLATE "C"), as the warehouse orders it and streams the week: the
# key's index is built by one sort of the week, which byte comparison keeps cheap (with the
# presorted stream, the 10M publish went from 124 to 62 s; the two were not measured apart).
_DDL = """party_id VARCHAR COLLATE "C" NOT NULL, jurisdiction VARCHAR NOT NULL, rank INT NOT NULL,
    product_id VARCHAR NOT NULL, score NUMERIC(8,6) NOT NULL, primary_signal VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL, evaluated_at TIMESTAMP NOT NULL"""
_LIVE = sql.Identifier(SCHEMA, TABLE)
# Beside nbp_current, for the apps: the live week's product names, and a view of the live
# table with each product's name and the week's partition key. Both change with the swap.
PRODUCTS_TABLE, NAMED_VIEW = "nbp_current_products", "nbp_current_named"
_PRODUCTS, _VIEW = sql.Identifier(SCHEMA, PRODUCTS_TABLE), sql.Identifier(SCHEMA, NAMED_VIEW)
PRODUCT_COLUMNS = ["product_id", "product_name", "product_class"]
# The apps' role: SELECT on nbp_current, its products and the view, nothing else. Created
# by the publisher when it may create roles (the embedded server); in production a DBA
# creates it (docs/apps.md). Login users of the apps are its members.
APP_READER_ROLE = "nbp_app_reader"
_VIEW_SQL = sql.SQL("""CREATE VIEW {view} AS
    SELECT c.party_id, c.jurisdiction, c.rank, c.product_id, p.product_name, p.product_class, c.score,
           c.primary_signal, c.model_version, (c.evaluated_at - interval '7 days')::date AS week_start, c.evaluated_at
    FROM {live} c LEFT JOIN {products} p ON p.product_id = c.product_id""")
# Publishers serialise on this table (MOD-107), not on an advisory lock: any role, an app's
# included, can take any advisory lock key. SHARE ROW EXCLUSIVE conflicts with itself and
# with every mode that needs a write privilege, never with ACCESS SHARE, the one mode SELECT
# allows: an app cannot hold it up even if a DBA grants it SELECT on every table here.
PUBLISH_LOCK_TABLE = "nbp_publish_lock"
_PUBLISH_LOCK = sql.Identifier(SCHEMA, PUBLISH_LOCK_TABLE)
_CHUNK = 50_000  # rows per CSV write (~2.5 MB), and per batch when a DataFrame is published
# Longest values accepted: an identifier is a key, never a document (a 1 MB party_id once
# failed the primary key build with "index row too large", after loading the whole week).
_MAX_CHARS = {"party_id": 64, "product_id": 64, "jurisdiction": 64, "primary_signal": 64, "model_version": 128}
_EMPTY = "refusing to publish an empty week: the apps' nbp_current is left as it is"
# The swap's ACCESS EXCLUSIVE request: app reads queue behind it while it waits, so each
# attempt waits briefly and a busy table is retried with exponential back-off.
LOCK_TIMEOUT_SECONDS = 2.0  # longest an app read queues behind one attempt
LOCK_ATTEMPTS = 8
LOCK_BACKOFF_SECONDS = 0.5  # pause after the first timed-out attempt, doubled after each one
LOCK_BACKOFF_CAP_SECONDS = 15.0  # longest pause; 8 attempts give up after about 1 minute
# Waiting for another publisher's swap (no app waits behind this): one wait, longer than a
# swap that itself waits out the live table's attempts above.
PUBLISH_LOCK_TIMEOUT_SECONDS = 120.0


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be reached; the message names host and database, never the password."""


class LiveTableBusy(RuntimeError):
    """The swap could not lock nbp_current: a reader holds it (named in the message). Nothing was changed."""


class PublishLockBusy(RuntimeError):
    """Another publisher (named in the message) held the publishers' lock too long. Nothing was changed."""


@dataclass(frozen=True)
class PublishResult:
    published: bool
    rows: int  # rows made live by this call (0 when skipped)
    evaluated_at: datetime  # the week offered for publishing
    previous_evaluated_at: datetime | None  # the week that was live before
    reason: str
    seconds: float
    lock_wait_seconds: float = 0.0  # waiting for the swap's lock on the live table, back-off pauses included
    lock_retries: int = 0  # swap lock attempts that timed out before one succeeded


def connect(url: str) -> psycopg.Connection:
    """An autocommit connection; a failure names host and database, never the password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:  # libpq's parse errors quote the string, which may hold the password
        raise PostgresUnavailable("cannot connect to PostgreSQL: the connection string cannot be parsed") from None
    host, port = params.get("host") or "localhost", params.get("port") or 5432
    where = f"host={host} port={port} dbname={params.get('dbname') or params.get('user')}"
    try:
        # autocommit, so each `with conn.transaction()` below is a real BEGIN ... COMMIT
        return psycopg.connect(url, connect_timeout=params.get("connect_timeout", 10), autocommit=True)
    except psycopg.Error as exc:
        message = str(exc).strip()
        message = redact(message, [params.get("password")])  # libpq does not echo it today; it never will here
        raise PostgresUnavailable(f"cannot connect to PostgreSQL ({where}): {message}") from None


def check_connection(url: str) -> None:
    """Fail early, with a readable message, when the apps' database cannot be reached."""
    with connect(url) as conn:
        conn.execute("SELECT 1")


def _exists(conn: psycopg.Connection, query: str, *params: str) -> bool:
    # A catalog query, not to_regclass(): it reads the catalog with a fresh snapshot, so a
    # table another publisher just created is seen whatever this backend's catalog cache holds.
    return conn.execute(f"SELECT EXISTS ({query})", params).fetchone()[0]


def _live_week(conn: psycopg.Connection) -> datetime | None:
    if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{TABLE}",)).fetchone()[0] is None:
        return None
    # one week per table (enforced at publish): any row tells the week, no scan
    row = conn.execute(sql.SQL("SELECT evaluated_at FROM {} LIMIT 1").format(_LIVE)).fetchone()
    return row[0] if row else None


def current_evaluated_at(url: str) -> datetime | None:
    """The week the apps currently see, or None before the first publish."""
    with connect(url) as conn:
        return _live_week(conn)


def week_key(evaluated_at: datetime) -> str:
    """The week as operators and the UI name it: its partition key, the Monday it starts
    (evaluated_at is the Monday after). A timestamp that is not a Monday midnight is shown as is."""
    if evaluated_at.time() != datetime.min.time() or evaluated_at.weekday() != 0:
        return f"evaluated_at {evaluated_at:%Y-%m-%d %H:%M:%S}"
    return (evaluated_at - timedelta(days=7)).strftime("%Y-%m-%d")


def _week(dt: datetime) -> str:
    return week_key(dt)


def _rows_problem(batch: pa.RecordBatch, column: str, bad: pa.Array, problem: str, offset: int) -> None:
    """Raise ValueError naming the column, how many rows of this batch and up to 3 of them (long strings clipped)."""
    count = pc.sum(bad).as_py() or 0
    if not count:
        return
    first = pc.indices_nonzero(bad)[0].as_py()
    examples = "\n".join(
        "  " + ", ".join(f"{name}={_clip(value)}" for name, value in row.items())
        for row in batch.filter(bad).slice(0, 3).to_pylist()
    )
    raise ValueError(
        f"cannot publish nbp_current: column {column}: {count:,} rows with {problem} in this batch"
        f" (first at row {offset + first:,} of the week), e.g.\n{examples}"
    )


def _clip(value: object) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"{value[:20]!r}... ({len(value):,} characters)"
    return "null" if value is None else str(value)


def _check_week(evaluated_at: datetime) -> None:
    if not isinstance(evaluated_at, datetime) or evaluated_at.tzinfo is not None:
        raise ValueError(f"evaluated_at must be a zone-naive datetime (TIMESTAMP), got {evaluated_at!r}")


def _check_columns(names: list[str]) -> None:
    if sorted(names) != sorted(COLUMNS):
        missing, extra = sorted(set(COLUMNS) - set(names)), sorted(set(names) - set(COLUMNS))
        doubled = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(
            f"nbp_current needs exactly the columns {COLUMNS}: missing {missing}, unexpected {extra}"
            + (f", repeated {doubled}" if doubled else "")
        )


def _batches(rows: pd.DataFrame | Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The rows as Arrow record batches, one at a time: a DataFrame in _CHUNK-row slices, an
    iterable (a RecordBatchReader, a generator, Snowflake's batches of Tables) as it comes."""
    if isinstance(rows, pd.DataFrame):
        for start in range(0, len(rows), _CHUNK):
            try:
                batch = pa.RecordBatch.from_pandas(rows.iloc[start : start + _CHUNK], preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise ValueError(f"cannot publish nbp_current: {exc}") from None  # e.g. an object column of mixed types
            yield batch
            del batch
        return
    if isinstance(rows, (pa.RecordBatch, pa.Table)):
        rows = [rows]
    for item in rows:
        if isinstance(item, pa.RecordBatch):
            yield item
        elif isinstance(item, pa.Table):  # snowflake-connector's fetch_arrow_batches() yields Tables
            if item.num_rows == 0:
                _check_columns(item.schema.names)
            yield from item.to_batches()
        else:
            raise TypeError(
                f"publish_current needs a DataFrame or an iterable of pyarrow.RecordBatch, got an item {type(item)}"
            )
        del item  # let go of this batch before the source produces the next one


def _checked(batch: pa.RecordBatch, evaluated_at: datetime, offset: int) -> pa.RecordBatch:
    """One batch validated (vectorised) and normalised for COPY: COLUMNS in order, plain or
    large strings, evaluated_at in microseconds. `offset`: rows of the week before this batch."""
    at = f" (in the batch starting at row {offset:,} of the week)"
    try:
        _check_columns(batch.schema.names)
    except ValueError as exc:
        raise ValueError(f"{exc}{at}") from None
    batch = batch.select(COLUMNS)
    out = {}
    for column in COLUMNS:  # nulls first: an all-null column has Arrow type null
        values = batch.column(column)
        if values.null_count or pa.types.is_floating(values.type):
            _rows_problem(batch, column, pc.is_null(values, nan_is_null=True), "null values", offset)
    for column in _TEXT:
        values = batch.column(column)
        if pa.types.is_dictionary(values.type) or pa.types.is_string_view(values.type):
            values = values.cast(pa.large_string())
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            raise ValueError(f"column {column} has type {values.type}, expected string{at}")
        length = pc.utf8_length(values)
        _rows_problem(batch, column, pc.equal(length, 0), "empty strings", offset)
        limit = _MAX_CHARS[column]
        _rows_problem(batch, column, pc.greater(length, limit), f"values longer than {limit} characters", offset)
        _rows_problem(batch, column, pc.match_substring(values, "\x00"), "NUL characters", offset)
        out[column] = values

    rank = batch.column("rank")
    if not pa.types.is_integer(rank.type):
        raise ValueError(f"column rank has type {rank.type}, expected integer{at}")
    _rows_problem(batch, "rank", pc.less(rank, 1), "rank below 1", offset)
    _rows_problem(batch, "rank", pc.greater(rank, 2**31 - 1), "rank above 2147483647 (INT)", offset)
    out["rank"] = rank

    score = batch.column("score")
    if not (pa.types.is_floating(score.type) or pa.types.is_decimal(score.type) or pa.types.is_integer(score.type)):
        raise ValueError(f"column score has type {score.type}, expected double or decimal{at}")
    # NaN and infinities compare false, so they are refused here too
    fits = pc.less(pc.abs(score.cast(pa.float64())), 100)
    _rows_problem(batch, "score", pc.invert(fits), "values that do not fit NUMERIC(8,6)", offset)
    out["score"] = score

    stamp = batch.column("evaluated_at")
    if not pa.types.is_timestamp(stamp.type) or stamp.type.tz is not None:
        raise ValueError(f"column evaluated_at has type {stamp.type}, expected a zone-naive timestamp{at}")
    try:
        week = pa.scalar(evaluated_at, pa.timestamp("us")).cast(stamp.type)
        other = pc.not_equal(stamp, week)
    except (pa.ArrowInvalid, OverflowError):  # the week is not representable in this unit: no row can be it
        other = pa.array([True] * len(stamp))
    _rows_problem(batch, "evaluated_at", other, f"a week other than {evaluated_at}", offset)
    out["evaluated_at"] = stamp.cast(pa.timestamp("us"))  # exact: every value is the week
    return pa.RecordBatch.from_arrays([out[c] for c in COLUMNS], names=COLUMNS)


def publish_current(
    url: str,
    rows: pd.DataFrame | Iterable[pa.RecordBatch],
    evaluated_at: datetime,
    *,
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    lock_attempts: int = LOCK_ATTEMPTS,
    lock_backoff: float = LOCK_BACKOFF_SECONDS,
    lock_backoff_cap: float = LOCK_BACKOFF_CAP_SECONDS,
    products: pd.DataFrame | None = None,
) -> PublishResult:
    """Make `rows` (one week's top products per customer) the week the apps see.

    `products` (product_id, product_name, product_class: the week's product register)
    replaces nbp_current_products in the same swap, so the view nbp_current_named always
    names the live week's products; without it the products table stays as it was.

    `rows`: a pandas DataFrame, or an iterable of pyarrow.RecordBatch (DuckDB's
    fetch_record_batch(), Snowflake's fetch_arrow_batches(), any generator) with exactly the
    columns COLUMNS in any order. Batches are validated and streamed into COPY one at a
    time, so this process holds one batch, never the week.

    Replaces the live week atomically unless a newer week is already live; re-running the
    same week replaces it (safe re-run). An empty week, a malformed batch or a duplicate
    (party_id, rank) raises ValueError before the swap and leaves the live table untouched.

    The swap locks the live table with `lock_timeout` seconds per attempt, so an app read
    never queues behind it for longer; a timed-out attempt is retried (up to `lock_attempts`,
    pausing `lock_backoff` seconds, doubled each time, at most `lock_backoff_cap`) without
    reloading. If a reader still holds the table, LiveTableBusy names it; nothing changes.
    """
    started = time.monotonic()
    _check_week(evaluated_at)
    if lock_timeout <= 0 or lock_attempts < 1:  # lock_timeout 0 would mean "wait forever" to PostgreSQL
        raise ValueError(f"lock_timeout must be > 0 and lock_attempts >= 1, got {lock_timeout}, {lock_attempts}")
    if isinstance(rows, pd.DataFrame):  # a frame can be refused before connecting
        if rows.empty:
            raise ValueError(_EMPTY)
        _check_columns([str(c) for c in rows.columns])
    suffix = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"  # concurrent publishers never share a name
    stage, old_name = sql.Identifier(SCHEMA, f"{TABLE}_stage_{suffix}"), f"{TABLE}_old_{suffix}"
    stage_pk, live_pk = sql.Identifier(f"{TABLE}_stage_{suffix}_pkey"), sql.Identifier(f"{TABLE}_pkey")
    loaded, lock_wait, lock_retries = 0, 0.0, 0

    def result(published: bool, previous: datetime | None, reason: str) -> PublishResult:
        log.info("nbp_current: %s in %.1f s", reason, time.monotonic() - started)
        return PublishResult(
            published,
            loaded if published else 0,
            evaluated_at,
            previous,
            reason,
            time.monotonic() - started,
            lock_wait_seconds=lock_wait,
            lock_retries=lock_retries,
        )

    def skipped(previous: datetime) -> PublishResult:
        return result(
            False,
            previous,
            f"skipped: week {_week(evaluated_at)} is older than week {_week(previous)}, which the apps already see",
        )

    with connect(url) as conn:
        _ensure_schema(conn)
        previous = _live_week(conn)
        if previous is not None and previous > evaluated_at:
            return skipped(previous)  # answer early rather than load millions of rows; re-checked under the lock

        # Staging lives in the swap's transaction, so any failure (a bad batch, a duplicate
        # key, even a killed process) rolls it back: no staging table is ever left behind.
        # Until the swap's locks below, this transaction holds nothing the apps' reads would wait for.
        swapped = False
        with conn.transaction() as tx:
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(stage, sql.SQL(_DDL)))
            batches = _batches(rows)
            first = next((b for b in (_checked(b, evaluated_at, 0) for b in batches) if b.num_rows), None)
            if first is None:
                raise ValueError(_EMPTY)
            # One week has one model_version and one evaluated_at: the stage table fills them
            # from column defaults, so COPY carries half the bytes (~40% faster at 3M rows).
            model_version = first.column("model_version")[0].as_py()
            conn.execute(
                sql.SQL(
                    "ALTER TABLE {} ALTER COLUMN model_version SET DEFAULT {}, ALTER COLUMN evaluated_at SET DEFAULT {}"
                ).format(stage, sql.Literal(model_version), sql.Literal(evaluated_at))
            )
            stream, first = _prepend(first, batches), None
            columns = sql.SQL(", ").join(map(sql.Identifier, _COPIED))
            copy_in = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(stage, columns)
            # CSV per chunk, no row loop. The next chunks are read, checked and encoded in a
            # thread while PostgreSQL parses this one (bounded: a few chunks ahead).
            with conn.cursor() as cur, cur.copy(copy_in) as copy:
                for rows, data in prefetched(_encoded(stream, evaluated_at, model_version)):
                    copy.write(data)
                    loaded += rows
                    del data
            conn.execute(
                sql.SQL(
                    "ALTER TABLE {} ALTER COLUMN model_version DROP DEFAULT, ALTER COLUMN evaluated_at DROP DEFAULT"
                ).format(stage)
            )
            # The key is built by one sort of the week: with PostgreSQL's default 64MB it spills
            # to disk at millions of rows. A session setting any role may change.
            conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            try:
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (party_id, rank)").format(stage, stage_pk)
                )
            except psycopg.errors.UniqueViolation as exc:
                detail = exc.diag.message_detail or str(exc)  # "Key (party_id, rank)=(P000004, 1) is duplicated."
                raise ValueError(
                    f"cannot publish nbp_current: duplicate (party_id, rank) in the week's rows: {detail}"
                    " (the primary key needs one row per customer and rank)"
                ) from None
            conn.execute(sql.SQL("ANALYZE {}").format(stage))

            # The swap. Publishers queue here for each other; an app can neither take this lock
            # nor wait on it. From here on every lock wait times out after lock_timeout.
            _lock_publishers(conn)
            _set_lock_timeout(conn, lock_timeout)
            live_exists = _exists(conn, "SELECT FROM pg_tables WHERE schemaname = %s AND tablename = %s", SCHEMA, TABLE)
            if live_exists:
                lock_wait, lock_retries = _lock_live(
                    conn, lock_timeout, lock_attempts, lock_backoff, lock_backoff_cap, previous
                )
                previous = _live_week(conn)
                if previous is not None and previous > evaluated_at:
                    raise psycopg.Rollback(tx)  # a newer week went live while we loaded
                # a new table starts without grants: carry over the apps' SELECT (and any other grant)
                for grantee, privilege in conn.execute(
                    "SELECT grantee, privilege_type FROM information_schema.table_privileges"
                    " WHERE table_schema = %s AND table_name = %s AND grantee <> current_user",
                    (SCHEMA, TABLE),
                ).fetchall():
                    to = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
                    conn.execute(sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privilege), stage, to))
            # The view is bound to the live table itself, not its name: it goes and comes back with the swap.
            _drop_view(conn, previous)
            if live_exists:
                conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(_LIVE, sql.Identifier(old_name)))
            conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(stage, sql.Identifier(TABLE)))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCHEMA, old_name)))
            # a renamed table keeps its constraint name; next week's staging must find it free
            conn.execute(sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(_LIVE, stage_pk, live_pk))
            _replace_products(conn, products)
            conn.execute(_VIEW_SQL.format(view=_VIEW, live=_LIVE, products=_PRODUCTS))
            _grant_app_reader(conn)
            swapped = True
    if not swapped:
        return skipped(previous)
    if previous is None:
        return result(True, None, f"first publish: week {_week(evaluated_at)}")
    change = "re-published" if previous == evaluated_at else f"replaced week {_week(previous)} with"
    return result(True, previous, f"{change} week {_week(evaluated_at)}")


def _ensure_schema(conn: psycopg.Connection) -> None:
    """The schema and the publishers' lock table, created if missing. Concurrent first
    publishers may both try: the loser's catalog insert fails and it looks again (no lock
    is waited for here, so there is none an app could take)."""
    for attempt in range(3):
        try:
            with conn.transaction():
                create_schema_if_missing(conn, SCHEMA, "postgres")
                if not _exists(
                    conn, "SELECT FROM pg_tables WHERE schemaname = %s AND tablename = %s", SCHEMA, PUBLISH_LOCK_TABLE
                ):
                    # No rows and no grants: publishers lock it, nobody reads it.
                    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ()").format(_PUBLISH_LOCK))
            return
        except psycopg.errors.UniqueViolation:  # another publisher created it first
            if attempt == 2:
                raise


def _set_lock_timeout(conn: psycopg.Connection, seconds: float) -> None:
    # 0 would mean "wait forever" to PostgreSQL
    conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{max(1, round(seconds * 1000))}ms",))


def _lock_publishers(conn: psycopg.Connection, timeout: float | None = None) -> None:
    """The publishers' lock, for the rest of this transaction; PublishLockBusy names the holder."""
    timeout = PUBLISH_LOCK_TIMEOUT_SECONDS if timeout is None else timeout
    try:
        with conn.transaction():  # SAVEPOINT: the timeout is reverted with it, and a timed-out wait leaves the rest
            _set_lock_timeout(conn, timeout)
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(_PUBLISH_LOCK))
    except psycopg.errors.LockNotAvailable:
        who = _holders(conn, f"{SCHEMA}.{PUBLISH_LOCK_TABLE}", "another publisher")
        raise PublishLockBusy(
            f"cannot publish nbp_current: {who}; waited {timeout:g} s for it. Nothing was changed."
        ) from None


def _drop_view(conn: psycopg.Connection, live_week: datetime | None) -> None:
    """Drop the view for the swap. A session holding it also holds the live table, which the
    swap locked first; should one hold the view alone, the wait times out and names it."""
    try:
        with conn.transaction():
            conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(_VIEW))
    except psycopg.errors.LockNotAvailable:
        live = f"week {_week(live_week)}" if live_week is not None else "the week they saw before"
        raise LiveTableBusy(
            f"cannot publish nbp_current: {_holders(conn, f'{SCHEMA}.{NAMED_VIEW}', 'a reader')}; the swap timed out"
            f" waiting for it. Nothing was changed: the apps still see {live}."
        ) from None


def _replace_products(conn: psycopg.Connection, products: pd.DataFrame | None) -> None:
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (product_id VARCHAR PRIMARY KEY, "
            "product_name VARCHAR NOT NULL, product_class VARCHAR NOT NULL)"
        ).format(_PRODUCTS)
    )
    if products is None:
        return
    missing = sorted(set(PRODUCT_COLUMNS) - set(products.columns))
    if missing:
        raise ValueError(f"cannot publish nbp_current: the product register lacks {missing}")
    conn.execute(sql.SQL("DELETE FROM {}").format(_PRODUCTS))  # a handful of rows: DELETE keeps grants and the view
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO {} (product_id, product_name, product_class) VALUES (%s, %s, %s)").format(_PRODUCTS),
            products[PRODUCT_COLUMNS].itertuples(index=False, name=None),
        )


def _may_create_roles(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user").fetchone()[0]


def _grant_app_reader(conn: psycopg.Connection, objects: bool = True) -> None:
    """SELECT for the apps' read-only role on the live table, its products and the view;
    the role is created when this user may create roles, else granted only if it exists.
    Then what the role may have gained is taken back (_protect_app_reader)."""
    role = sql.Identifier(APP_READER_ROLE)
    if not _exists(conn, "SELECT FROM pg_roles WHERE rolname = %s", APP_READER_ROLE):
        if not _may_create_roles(conn):
            log.warning(
                "role %s does not exist and this user cannot create it: the apps' grants were not made "
                "(see docs/apps.md)",
                APP_READER_ROLE,
            )
            return
        # LOGIN without a password: it can log in only where the server trusts the connection
        # (the embedded server's socket); a DBA sets a password or adds member roles elsewhere.
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(SCHEMA), role))
    if objects:
        conn.execute(sql.SQL("GRANT SELECT ON {}, {}, {} TO {}").format(_LIVE, _PRODUCTS, _VIEW, role))
    _protect_app_reader(conn)


# The one role-level setting the apps' role should have: its sessions start read-only. A
# convenience (an app may switch it off); the protection is its privileges.
_APP_READER_SETTINGS = [(0, ["default_transaction_read_only=on"])]


def _protect_app_reader(conn: psycopg.Connection) -> None:
    """Undo what the apps' role can do for itself: role-level settings it planted (ALTER ROLE
    itself SET ..., e.g. default_transaction_read_only = off for every later app session) are
    reset, and TEMP on this database is taken from it. Each step in a savepoint: one this
    user may not take, or a wait that times out (an app's uncommitted ALTER ROLE), is logged
    with what to do or who holds it, and the publish goes on."""
    for step in (_reset_app_reader_settings, _revoke_app_reader_temp):
        try:
            with conn.transaction():
                step(conn)
        except psycopg.errors.InsufficientPrivilege as exc:
            log.warning("%s: this user may not (%s); see docs/apps.md", step.__doc__, str(exc).strip())
        except psycopg.errors.LockNotAvailable:
            log.warning(
                "%s: timed out waiting, %s", step.__doc__, _holders(conn, "pg_catalog.pg_db_role_setting", "a session")
            )


def _reset_app_reader_settings(conn: psycopg.Connection) -> None:
    """resetting the role-level settings of nbp_app_reader"""
    settings = conn.execute(
        "SELECT setdatabase, setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
        " WHERE r.rolname = %s ORDER BY setdatabase",
        (APP_READER_ROLE,),
    ).fetchall()
    if [(db, sorted(config or [])) for db, config in settings] == _APP_READER_SETTINGS:
        return
    role = sql.Identifier(APP_READER_ROLE)
    for database, config in settings:
        if database == 0:
            conn.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(role))
        else:
            name = conn.execute("SELECT datname FROM pg_database WHERE oid = %s", (database,)).fetchone()
            if name:
                conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(role, sql.Identifier(name[0])))
    conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role))
    if not settings:
        log.info("role %s: its sessions now start read-only (default_transaction_read_only = on)", APP_READER_ROLE)
        return
    log.warning(
        "role %s had role-level settings it may have set itself, reset to default_transaction_read_only=on: %s",
        APP_READER_ROLE,
        "; ".join(f"{'all databases' if db == 0 else f'database oid {db}'}: {config}" for db, config in settings),
    )


def _revoke_app_reader_temp(conn: psycopg.Connection) -> None:
    """taking TEMP on this database from nbp_app_reader"""
    if not conn.execute("SELECT has_database_privilege(%s, current_database(), 'TEMP')", (APP_READER_ROLE,)).fetchone()[
        0
    ]:
        return
    # Every role has TEMP through PUBLIC until it is revoked there. The other login roles
    # (not the apps' role, nor its members) get it back by name, so nothing changes for them;
    # the owner and superusers keep it anyway.
    keep = [
        name
        for (name,) in conn.execute(
            """SELECT r.rolname FROM pg_roles r, pg_database d
               WHERE d.datname = current_database() AND r.rolcanlogin AND NOT r.rolsuper AND r.oid <> d.datdba
                 AND NOT pg_has_role(r.oid, %s, 'MEMBER') AND has_database_privilege(r.oid, d.oid, 'TEMP')
               ORDER BY 1""",
            (APP_READER_ROLE,),
        )
    ]
    database = sql.Identifier(conn.execute("SELECT current_database()").fetchone()[0])
    conn.execute(
        sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC, {}").format(database, sql.Identifier(APP_READER_ROLE))
    )
    if keep:
        conn.execute(
            sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}").format(
                database, sql.SQL(", ").join(map(sql.Identifier, keep))
            )
        )
    if conn.execute("SELECT has_database_privilege(%s, current_database(), 'TEMP')", (APP_READER_ROLE,)).fetchone()[0]:
        raise psycopg.errors.InsufficientPrivilege(
            f"{APP_READER_ROLE} still has TEMP, through a role it is a member of or a grant this user cannot revoke"
        )
    log.info(
        "TEMP on this database revoked from PUBLIC and %s%s",
        APP_READER_ROLE,
        f"; granted back to {', '.join(keep)}" if keep else "",
    )


def ensure_app_reader(url: str) -> bool:
    """The apps' read-only role and its grants on what exists now (before the first publish:
    the schema only); False if the role is missing and this user may not create it."""
    with connect(url) as conn:
        if not _exists(conn, "SELECT FROM pg_roles WHERE rolname = %s", APP_READER_ROLE) and not _may_create_roles(
            conn
        ):
            return False
        _ensure_schema(conn)
        with conn.transaction():
            _lock_publishers(conn)  # publishers create the role under the same lock
            _set_lock_timeout(conn, LOCK_TIMEOUT_SECONDS)  # as in the swap: no wait on an app is unbounded
            live = _exists(conn, "SELECT FROM pg_views WHERE schemaname = %s AND viewname = %s", SCHEMA, NAMED_VIEW)
            _grant_app_reader(conn, objects=live)
        return True


def read_named(url: str, party_id: str, user: str | None = None) -> list[dict]:
    """One customer's rows from the view nbp_current_named, as an app (`user`) reads them."""
    from psycopg.rows import dict_row

    params = conninfo_to_dict(url) | ({"user": user} if user else {})
    with psycopg.connect(**params, row_factory=dict_row) as conn:
        return conn.execute(
            sql.SQL("SELECT * FROM {} WHERE party_id = %s ORDER BY rank").format(_VIEW), (party_id,)
        ).fetchall()


def _lock_live(
    conn: psycopg.Connection, timeout: float, attempts: int, backoff: float, cap: float, live_week: datetime | None
) -> tuple[float, int]:
    """ACCESS EXCLUSIVE on the live table, for the swap: (seconds waited in all, retries).

    App reads queue behind a waiting ACCESS EXCLUSIVE request, so each attempt waits at most
    `timeout`; between attempts the apps read freely. Each attempt runs in a savepoint: a
    timed-out one rolls back to it and the staged table survives for the next attempt.
    """
    first = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            with conn.transaction():  # SAVEPOINT; the setting is reverted with it on a timeout
                _set_lock_timeout(conn, timeout)
                conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(_LIVE))
            return time.monotonic() - first, attempt - 1
        except psycopg.errors.LockNotAvailable:
            if attempt == attempts:
                break
            delay = min(cap, backoff * 2 ** (attempt - 1))
            log.warning(
                "nbp_current: a reader holds the live table; swap attempt %d of %d retries in %.1f s",
                attempt,
                attempts,
                delay,
            )
            time.sleep(delay)
    waited = time.monotonic() - first
    live = f"week {_week(live_week)}" if live_week is not None else "the week they saw before"
    raise LiveTableBusy(
        f"cannot publish nbp_current: {_holders(conn, f'{SCHEMA}.{TABLE}', 'a reader')}; {attempts} attempts to"
        f" lock it for the swap timed out ({timeout:g} s each, {waited:.1f} s in all). Nothing was changed:"
        f" the apps still see {live}. End that session or its transaction, then re-run the publish."
    )


def _holders(conn: psycopg.Connection, relation: str, kind: str) -> str:
    """Who holds a lock on `relation`, as pg_locks and pg_stat_activity show it to this user;
    `kind` names a holder in the message ("a reader")."""
    holders = conn.execute(
        """SELECT a.pid, a.application_name, a.usename, a.state, a.state_change::timestamp(0),
                  extract(epoch FROM clock_timestamp() - a.state_change)::float8,
                  string_agg(DISTINCT l.mode, ', ')
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'relation' AND l.relation = to_regclass(%s) AND l.granted
             AND l.pid <> pg_backend_pid()
           GROUP BY 1, 2, 3, 4, a.state_change ORDER BY a.state_change NULLS LAST""",
        (relation,),
    ).fetchall()
    if not holders:
        return f"{kind} holds {relation} (it let go just now, or this user cannot see it in pg_locks)"
    described = []
    for pid, app, user, state, since, seconds, modes in holders[:5]:
        state = f"{state} since {since} ({seconds:.1f} s)" if state else "state not visible to this user"
        described.append(f"pid {pid}, application_name '{app or ''}', user {user}, {state}, holding {modes}")
    more = f"; and {len(holders) - 5} more sessions" if len(holders) > 5 else ""
    who = f"{kind} holds" if len(holders) == 1 else f"{len(holders)} sessions hold"
    return f"{who} {relation} (" + "; ".join(described) + more + ")"


def _prepend(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """first, then rest, holding no reference to first once it has been handed out."""
    holder = [first]
    del first
    yield holder.pop()
    yield from rest


def _one_model_version(batch: pa.RecordBatch, model_version: str, offset: int) -> None:
    if batch.num_rows:
        _rows_problem(
            batch,
            "model_version",
            pc.not_equal(batch.column("model_version"), model_version),
            f"a model_version other than the week's first row ({model_version})",
            offset,
        )


def _encoded(batches: Iterator[pa.RecordBatch], evaluated_at: datetime, model_version: str):
    """(rows, CSV bytes of _COPIED) per chunk of the checked week; the first batch was checked
    by the caller. A bad batch raises ValueError naming its rows, before any later batch is read."""
    offset = 0
    for i, batch in enumerate(batches):
        if i:
            batch = _checked(batch, evaluated_at, offset)
        _one_model_version(batch, model_version, offset)
        batch = batch.select(_COPIED)
        for start in range(0, batch.num_rows, _CHUNK):
            chunk = batch.slice(start, _CHUNK)
            yield chunk.num_rows, _csv_chunk(chunk)
        offset += batch.num_rows
        del batch  # one batch at a time: gone before the next is fetched


def _csv_chunk(batch: pa.RecordBatch) -> bytes:
    # Arrow's CSV writer is about 3x faster than DataFrame.to_csv; strings are always quoted,
    # so "NA", commas, quotes and newlines survive and an empty string is never NULL.
    out = io.BytesIO()
    pa_csv.write_csv(batch, out, pa_csv.WriteOptions(include_header=False))
    return out.getvalue()


def read_current(url: str, party_id: str | None = None) -> pd.DataFrame:
    """The live week, or one customer's rows, ordered by party_id, rank; empty before the first publish."""
    where = sql.SQL("WHERE party_id = {}").format(sql.Literal(party_id)) if party_id is not None else sql.SQL("")
    query = sql.SQL("COPY (SELECT {} FROM {} {} ORDER BY party_id, rank) TO STDOUT (FORMAT csv)").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), _LIVE, where
    )
    buffer = io.BytesIO()  # COPY + read_csv: a whole week is millions of rows, too many for Python tuples
    with connect(url) as conn:
        if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{TABLE}",)).fetchone()[0] is not None:
            with conn.cursor() as cur, cur.copy(query) as copy:
                for block in copy:
                    buffer.write(block)
    if buffer.tell() == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})
    buffer.seek(0)
    dtypes = {c: t for c, t in _DTYPES.items() if c != "evaluated_at"}
    frame = pd.read_csv(buffer, names=COLUMNS, dtype=dtypes, keep_default_na=False)  # a product "NA" stays "NA"
    frame["evaluated_at"] = pd.to_datetime(frame["evaluated_at"]).astype("datetime64[ns]")
    return frame
