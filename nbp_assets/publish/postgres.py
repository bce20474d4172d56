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

The publish, one concern per module: encode.py (batches into checked CSV chunks, no
database), ddl.py (what a publish creates), stage.py (COPY into the staging table, key,
ANALYZE), locks.py and swap.py (the locks with their timeouts, the retried swap, the "never
replace a newer week" rule), grants.py (the apps' role), their SQL in sql/*.sql. This
module is the API the rest of the project imports.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from nbp_assets.core.redaction import redact
from nbp_assets.publish import ddl, encode, grants, stage, swap
from nbp_assets.publish.locks import PublishLockBusy, lock_publishers, set_lock_timeout
from nbp_assets.publish.queries import query
from nbp_assets.publish.swap import LiveTableBusy, LockPolicy
from nbp_assets.publish.tables import (  # noqa: F401  (the names the rest of the project imports from here)
    APP_READER_ROLE,
    COLUMNS,
    LIVE,
    NAMED_VIEW,
    PRODUCT_COLUMNS,
    PRODUCTS_TABLE,
    PUBLISH_LOCK_TABLE,
    SCHEMA,
    TABLE,
    TEXT_COLUMNS,
    VIEW,
    exists,
    live_exists,
    live_week,
    week_key,
)

log = logging.getLogger(__name__)

__all__ = [
    "APP_READER_ROLE",
    "COLUMNS",
    "LOCK_ATTEMPTS",
    "LOCK_BACKOFF_CAP_SECONDS",
    "LOCK_BACKOFF_SECONDS",
    "LOCK_TIMEOUT_SECONDS",
    "NAMED_VIEW",
    "PRODUCTS_TABLE",
    "PRODUCT_COLUMNS",
    "PUBLISH_LOCK_TABLE",
    "PUBLISH_LOCK_TIMEOUT_SECONDS",
    "SCHEMA",
    "TABLE",
    "LiveTableBusy",
    "PostgresUnavailable",
    "PublishLockBusy",
    "PublishResult",
    "check_connection",
    "connect",
    "current_evaluated_at",
    "ensure_app_reader",
    "publish_current",
    "read_current",
    "read_named",
    "week_key",
]

_DTYPES = {c: object for c in TEXT_COLUMNS} | {
    "rank": "int32",
    "score": "float64",
    "evaluated_at": "datetime64[ns]",
}
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


def current_evaluated_at(url: str) -> datetime | None:
    """The week the apps currently see, or None before the first publish."""
    with connect(url) as conn:
        return live_week(conn)


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
    encode.check_week(evaluated_at)
    if lock_timeout <= 0 or lock_attempts < 1:  # lock_timeout 0 would mean "wait forever" to PostgreSQL
        raise ValueError(f"lock_timeout must be > 0 and lock_attempts >= 1, got {lock_timeout}, {lock_attempts}")
    encode.check_frame(rows)  # a frame can be refused before connecting
    policy = LockPolicy(lock_timeout, lock_attempts, lock_backoff, lock_backoff_cap)
    staged, loaded = stage.Stage.new(), 0
    with connect(url) as conn:
        ddl.ensure_schema(conn)
        outcome = swap.Swapped(False, live_week(conn))
        if swap.newer_is_live(outcome.previous, evaluated_at):
            return _result(started, evaluated_at, outcome, 0)  # answer early rather than load millions of rows
        # Staging lives in the swap's transaction, so any failure (a bad batch, a duplicate
        # key, even a killed process) rolls it back: no staging table is ever left behind.
        # Until the swap's locks, this transaction holds nothing the apps' reads would wait for.
        with conn.transaction() as tx:
            loaded = stage.load(conn, staged, rows, evaluated_at)
            outcome = swap.swap_in(
                conn, staged, evaluated_at, outcome.previous, products, policy, PUBLISH_LOCK_TIMEOUT_SECONDS
            )
            if not outcome.swapped:
                raise psycopg.Rollback(tx)  # a newer week went live while we loaded
    return _result(started, evaluated_at, outcome, loaded)


def _result(started: float, evaluated_at: datetime, outcome: swap.Swapped, loaded: int) -> PublishResult:
    """What a publish did, logged and returned."""
    previous, week = outcome.previous, week_key(evaluated_at)
    if not outcome.swapped:
        reason = f"skipped: week {week} is older than week {week_key(previous)}, which the apps already see"
    elif previous is None:
        reason = f"first publish: week {week}"
    else:
        change = "re-published" if previous == evaluated_at else f"replaced week {week_key(previous)} with"
        reason = f"{change} week {week}"
    log.info("nbp_current: %s in %.1f s", reason, time.monotonic() - started)
    return PublishResult(
        outcome.swapped,
        loaded if outcome.swapped else 0,
        evaluated_at,
        previous,
        reason,
        time.monotonic() - started,
        lock_wait_seconds=outcome.lock_wait,
        lock_retries=outcome.lock_retries,
    )


def ensure_app_reader(url: str) -> bool:
    """The apps' read-only role and its grants on what exists now (before the first publish:
    the schema only); False if the role is missing and this user may not create it."""
    with connect(url) as conn:
        if not exists(conn, "role_exists", APP_READER_ROLE) and not grants.may_create_roles(conn):
            return False
        ddl.ensure_schema(conn)
        with conn.transaction():
            lock_publishers(conn, PUBLISH_LOCK_TIMEOUT_SECONDS)  # publishers create the role under the same lock
            set_lock_timeout(conn, LOCK_TIMEOUT_SECONDS)  # as in the swap: no wait on an app is unbounded
            live = exists(conn, "view_exists", SCHEMA, NAMED_VIEW)
            grants.grant_app_reader(conn, objects=live)
        return True


def read_named(url: str, party_id: str, user: str | None = None) -> list[dict]:
    """One customer's rows from the view nbp_current_named, as an app (`user`) reads them."""
    params = conninfo_to_dict(url) | ({"user": user} if user else {})
    with psycopg.connect(**params, row_factory=dict_row) as conn:
        return conn.execute(query("read", "read_named", view=VIEW), (party_id,)).fetchall()


def read_current(url: str, party_id: str | None = None) -> pd.DataFrame:
    """The live week, or one customer's rows, ordered by party_id, rank; empty before the first publish."""
    where = query("read", "where_party", party_id=sql.Literal(party_id)) if party_id is not None else sql.SQL("")
    columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    copy_out = query("read", "read_current", columns=columns, live=LIVE, where=where)
    buffer = io.BytesIO()  # COPY + read_csv: a whole week is millions of rows, too many for Python tuples
    with connect(url) as conn:
        if live_exists(conn):
            with conn.cursor() as cur, cur.copy(copy_out) as copy:
                for block in copy:
                    buffer.write(block)
    if buffer.tell() == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})
    buffer.seek(0)
    dtypes = {c: t for c, t in _DTYPES.items() if c != "evaluated_at"}
    frame = pd.read_csv(buffer, names=COLUMNS, dtype=dtypes, keep_default_na=False)  # a product "NA" stays "NA"
    frame["evaluated_at"] = pd.to_datetime(frame["evaluated_at"]).astype("datetime64[ns]")
    return frame
