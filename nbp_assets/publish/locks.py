"""The locks a publish waits for: each wait has a timeout, and a timed-out wait names the
session that holds the lock (`holders`). Publishers serialise on the publishers' lock table."""

from __future__ import annotations

import psycopg

from nbp_assets.publish.queries import query
from nbp_assets.publish.tables import PUBLISH_LOCK, PUBLISH_LOCK_TABLE, SCHEMA


class PublishLockBusy(RuntimeError):
    """Another publisher (named in the message) held the publishers' lock too long. Nothing was changed."""


def set_lock_timeout(conn: psycopg.Connection, seconds: float) -> None:
    """lock_timeout for the rest of this transaction (or savepoint)."""
    # 0 would mean "wait forever" to PostgreSQL
    conn.execute(query("swap", "set_lock_timeout"), (f"{max(1, round(seconds * 1000))}ms",))


def lock_publishers(conn: psycopg.Connection, timeout: float) -> None:
    """The publishers' lock, for the rest of this transaction; PublishLockBusy names the holder."""
    try:
        with conn.transaction():  # SAVEPOINT: the timeout is reverted with it, and a timed-out wait leaves the rest
            set_lock_timeout(conn, timeout)
            conn.execute(query("swap", "lock_publishers", lock_table=PUBLISH_LOCK))
    except psycopg.errors.LockNotAvailable:
        who = holders(conn, f"{SCHEMA}.{PUBLISH_LOCK_TABLE}", "another publisher")
        raise PublishLockBusy(
            f"cannot publish nbp_current: {who}; waited {timeout:g} s for it. Nothing was changed."
        ) from None


def holders(conn: psycopg.Connection, relation: str, kind: str) -> str:
    """Who holds a lock on `relation`, as pg_locks and pg_stat_activity show it to this user;
    `kind` names a holder in the message ("a reader")."""
    found = conn.execute(query("catalog", "holders"), (relation,)).fetchall()
    if not found:
        return f"{kind} holds {relation} (it let go just now, or this user cannot see it in pg_locks)"
    described = []
    for pid, app, user, state, since, seconds, modes in found[:5]:
        state = f"{state} since {since} ({seconds:.1f} s)" if state else "state not visible to this user"
        described.append(f"pid {pid}, application_name '{app or ''}', user {user}, {state}, holding {modes}")
    more = f"; and {len(found) - 5} more sessions" if len(found) > 5 else ""
    who = f"{kind} holds" if len(found) == 1 else f"{len(found)} sessions hold"
    return f"{who} {relation} (" + "; ".join(described) + more + ")"
