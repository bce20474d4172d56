"""The swap: the staged week replaces the live one in one transaction, unless a newer week
is live. The live table is locked with a short timeout per attempt, retried with back-off,
so an app read never queues long behind the swap; a reader that holds it is named."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import psycopg
from psycopg import sql

from nbp_assets.publish import ddl, grants
from nbp_assets.publish.locks import holders, lock_publishers, set_lock_timeout
from nbp_assets.publish.queries import query
from nbp_assets.publish.stage import Stage
from nbp_assets.publish.tables import (
    LIVE,
    NAMED_VIEW,
    PRODUCT_COLUMNS,
    PRODUCTS,
    SCHEMA,
    TABLE,
    VIEW,
    exists,
    live_week,
    week_key,
)

# the publish logs under one name, as it did before it was split into modules
log = logging.getLogger("nbp_assets.publish.postgres")


class LiveTableBusy(RuntimeError):
    """The swap could not lock nbp_current: a reader holds it (named in the message). Nothing was changed."""


@dataclass(frozen=True)
class LockPolicy:
    """How the swap waits for the live table: `timeout` seconds per attempt, up to `attempts`,
    pausing `backoff` seconds after the first timed-out one, doubled each time, at most `cap`."""

    timeout: float
    attempts: int
    backoff: float
    cap: float


@dataclass(frozen=True)
class Swapped:
    swapped: bool  # False: a newer week went live while this one loaded (the caller rolls back)
    previous: datetime | None  # the week live before, as seen under the lock
    lock_wait: float = 0.0
    lock_retries: int = 0


def newer_is_live(previous: datetime | None, evaluated_at: datetime) -> bool:
    """An older week (a late backfill) never replaces a newer one; the same week is re-published."""
    return previous is not None and previous > evaluated_at


def swap_in(
    conn: psycopg.Connection,
    stage: Stage,
    evaluated_at: datetime,
    previous: datetime | None,
    products: pd.DataFrame | None,
    policy: LockPolicy,
    publish_lock_timeout: float,
) -> Swapped:
    """Make the staged table the live one, in the caller's transaction, with the products and
    the view beside it and the apps' grants. Publishers queue here for each other; an app can
    neither take this lock nor wait on it. From here on every lock wait times out after policy.timeout."""
    lock_publishers(conn, publish_lock_timeout)
    set_lock_timeout(conn, policy.timeout)
    live = exists(conn, "table_exists", SCHEMA, TABLE)
    lock_wait, lock_retries = 0.0, 0
    if live:
        lock_wait, lock_retries = lock_live(conn, policy, previous)
        previous = live_week(conn)
        if newer_is_live(previous, evaluated_at):
            return Swapped(False, previous, lock_wait, lock_retries)
        grants.carry_over(conn, stage.table)
    # The view is bound to the live table itself, not its name: it goes and comes back with the swap.
    drop_view(conn, previous)
    _rename(conn, stage, live)
    replace_products(conn, products)
    ddl.create_view(conn)
    grants.grant_app_reader(conn)
    return Swapped(True, previous, lock_wait, lock_retries)


def _rename(conn: psycopg.Connection, stage: Stage, live: bool) -> None:
    """The staged table takes the live one's name (and its key's); the old one is dropped."""
    old = sql.Identifier(stage.old_name)
    if live:
        conn.execute(query("swap", "rename_table", table=LIVE, name=old))
    conn.execute(query("swap", "rename_table", table=stage.table, name=sql.Identifier(TABLE)))
    conn.execute(query("swap", "drop_table", table=sql.Identifier(SCHEMA, stage.old_name)))
    live_key = sql.Identifier(f"{TABLE}_pkey")
    conn.execute(query("swap", "rename_key", live=LIVE, stage_key=stage.key, live_key=live_key))


def lock_live(conn: psycopg.Connection, policy: LockPolicy, previous: datetime | None) -> tuple[float, int]:
    """ACCESS EXCLUSIVE on the live table, for the swap: (seconds waited in all, retries).

    App reads queue behind a waiting ACCESS EXCLUSIVE request, so each attempt waits at most
    `policy.timeout`; between attempts the apps read freely. Each attempt runs in a savepoint: a
    timed-out one rolls back to it and the staged table survives for the next attempt.
    """
    first = time.monotonic()
    for attempt in range(1, policy.attempts + 1):
        try:
            with conn.transaction():  # SAVEPOINT; the setting is reverted with it on a timeout
                set_lock_timeout(conn, policy.timeout)
                conn.execute(query("swap", "lock_live", live=LIVE))
            return time.monotonic() - first, attempt - 1
        except psycopg.errors.LockNotAvailable:
            if attempt == policy.attempts:
                break
            delay = min(policy.cap, policy.backoff * 2 ** (attempt - 1))
            log.warning(
                "nbp_current: a reader holds the live table; swap attempt %d of %d retries in %.1f s",
                attempt,
                policy.attempts,
                delay,
            )
            time.sleep(delay)
    waited = time.monotonic() - first
    raise LiveTableBusy(
        f"cannot publish nbp_current: {holders(conn, f'{SCHEMA}.{TABLE}', 'a reader')}; {policy.attempts} attempts to"
        f" lock it for the swap timed out ({policy.timeout:g} s each, {waited:.1f} s in all). Nothing was changed:"
        f" the apps still see {_seen(previous)}. End that session or its transaction, then re-run the publish."
    )


def _seen(previous: datetime | None) -> str:
    return f"week {week_key(previous)}" if previous is not None else "the week they saw before"


def drop_view(conn: psycopg.Connection, previous: datetime | None) -> None:
    """Drop the view for the swap. A session holding it also holds the live table, which the
    swap locked first; should one hold the view alone, the wait times out and names it."""
    try:
        with conn.transaction():
            conn.execute(query("ddl", "drop_view", view=VIEW))
    except psycopg.errors.LockNotAvailable:
        raise LiveTableBusy(
            f"cannot publish nbp_current: {holders(conn, f'{SCHEMA}.{NAMED_VIEW}', 'a reader')}; the swap timed out"
            f" waiting for it. Nothing was changed: the apps still see {_seen(previous)}."
        ) from None


def replace_products(conn: psycopg.Connection, products: pd.DataFrame | None) -> None:
    """The week's product register replaces nbp_current_products; None leaves it as it is."""
    ddl.ensure_products_table(conn)
    if products is None:
        return
    missing = sorted(set(PRODUCT_COLUMNS) - set(products.columns))
    if missing:
        raise ValueError(f"cannot publish nbp_current: the product register lacks {missing}")
    conn.execute(query("swap", "clear_products", products=PRODUCTS))
    with conn.cursor() as cur:
        cur.executemany(
            query("swap", "insert_product", products=PRODUCTS),
            products[PRODUCT_COLUMNS].itertuples(index=False, name=None),
        )
