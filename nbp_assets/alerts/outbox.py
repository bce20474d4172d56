"""The compliance outbox in PostgreSQL: every nbp.fairness_breach alert, durably, first.

Tables (schema `compliance`, created on first use; see docs/fairness.md):
- fairness_alerts: one row per breach of (week_start, product_id, dimension,
  model_version), the unique key that makes an alert exactly-once however often a week
  is re-run. status open/resolved; delivered_at is when the first channel accepted it.
- fairness_alert_deliveries: one row per alert and channel: pending/delivered,
  attempts, next_attempt_at (back-off), last_error.
- fairness_alert_events: append-only audit trail (evaluated, opened, reopened,
  resolved, delivery_failed, delivered), with the Dagster run that caused each.
- view fairness_alerts_undelivered: alerts no channel has accepted yet, with why.

The fairness_report asset records a week's evaluation here (record_week) before it
writes the report, so an alert exists the moment its breach is materialized.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from nbp_assets.storage.postgres import _connect

SCHEMA = "compliance"
ALERTS = f"{SCHEMA}.fairness_alerts"
DELIVERIES = f"{SCHEMA}.fairness_alert_deliveries"
EVENTS = f"{SCHEMA}.fairness_alert_events"
UNDELIVERED = f"{SCHEMA}.fairness_alerts_undelivered"
ALERT_TYPE = "nbp.fairness_breach"
_LOCK_ID = 107_000_004  # serialises outbox writers: DDL and a week's evaluation

DDL = [
    f"""CREATE TABLE IF NOT EXISTS {ALERTS} (
        alert_id          BIGSERIAL PRIMARY KEY,
        alert_type        TEXT NOT NULL DEFAULT '{ALERT_TYPE}',
        week_start        DATE NOT NULL,
        product_id        TEXT NOT NULL,
        dimension         TEXT NOT NULL,
        model_version     TEXT NOT NULL,
        highest_group     TEXT NOT NULL,
        highest_rate      DOUBLE PRECISION NOT NULL,
        highest_customers INTEGER NOT NULL,
        lowest_group      TEXT NOT NULL,
        lowest_rate       DOUBLE PRECISION NOT NULL,
        lowest_customers  INTEGER NOT NULL,
        gap_pp            NUMERIC(7,4) NOT NULL,
        threshold_pp      NUMERIC(7,4) NOT NULL,
        eligibility_pp    NUMERIC(8,4),
        ranking_pp        NUMERIC(8,4),
        attributable_to   TEXT,
        payload           JSONB NOT NULL,
        status            TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
        created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
        created_by_run    TEXT NOT NULL,
        last_seen_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
        last_seen_run     TEXT NOT NULL,
        last_gap_pp       NUMERIC(7,4) NOT NULL,
        delivered_at      TIMESTAMPTZ,
        resolved_at       TIMESTAMPTZ,
        resolved_by_run   TEXT,
        resolution        TEXT,
        reopened          INTEGER NOT NULL DEFAULT 0,
        CONSTRAINT fairness_alerts_once UNIQUE (week_start, product_id, dimension, model_version)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {DELIVERIES} (
        alert_id        BIGINT NOT NULL REFERENCES {ALERTS} (alert_id),
        channel         TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        last_attempt_at TIMESTAMPTZ,
        last_error      TEXT,
        delivered_at    TIMESTAMPTZ,
        PRIMARY KEY (alert_id, channel)
    )""",
    f"""CREATE TABLE IF NOT EXISTS {EVENTS} (
        event_id   BIGSERIAL PRIMARY KEY,
        at         TIMESTAMPTZ NOT NULL DEFAULT now(),
        week_start DATE NOT NULL,
        alert_id   BIGINT REFERENCES {ALERTS} (alert_id),
        event      TEXT NOT NULL,
        channel    TEXT,
        run_id     TEXT,
        detail     JSONB NOT NULL DEFAULT '{{}}'::jsonb
    )""",
    f"""CREATE OR REPLACE VIEW {UNDELIVERED} AS
        SELECT a.alert_id, a.week_start, a.product_id, a.dimension, a.model_version, a.gap_pp,
               a.status, a.created_at,
               coalesce(jsonb_agg(jsonb_build_object(
                   'channel', d.channel, 'attempts', d.attempts, 'last_error', d.last_error,
                   'next_attempt_at', d.next_attempt_at) ORDER BY d.channel)
                   FILTER (WHERE d.channel IS NOT NULL), '[]'::jsonb) AS deliveries
        FROM {ALERTS} a LEFT JOIN {DELIVERIES} d ON d.alert_id = a.alert_id AND d.state = 'pending'
        WHERE a.delivered_at IS NULL
        GROUP BY a.alert_id""",
]

_COLUMNS = [
    "highest_group", "highest_rate", "highest_customers", "lowest_group", "lowest_rate",
    "lowest_customers", "gap_pp", "threshold_pp", "eligibility_pp", "ranking_pp", "attributable_to",
]


@dataclass(frozen=True)
class RecordOutcome:
    """What one evaluation of a week did to the outbox (alert ids)."""

    opened: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    still_open: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    alert_ids: dict[tuple[str, str], int] = field(default_factory=dict)  # (product_id, dimension) -> breach's alert


def connect(url: str) -> psycopg.Connection:
    conn = _connect(url)  # autocommit; errors name host and database, never the password
    conn.row_factory = dict_row
    return conn


def ensure_schema(conn: psycopg.Connection) -> None:
    if conn.execute("SELECT to_regclass(%s) AS v", (UNDELIVERED,)).fetchone()["v"] is not None:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        # Checked first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when it exists.
        if not conn.execute("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = %s) AS e", (SCHEMA,)).fetchone()["e"]:
            conn.execute(f"CREATE SCHEMA {SCHEMA}")
        for statement in DDL:
            conn.execute(statement)


def add_event(conn, week: date, event: str, alert_id: int | None = None, run_id: str | None = None,
           channel: str | None = None, **detail) -> None:
    conn.execute(
        f"INSERT INTO {EVENTS} (week_start, alert_id, event, channel, run_id, detail) VALUES (%s, %s, %s, %s, %s, %s)",
        (week, alert_id, event, channel, run_id, Jsonb(detail)),
    )


def _gap_text(gap: float | None) -> str:
    return "not judged (fewer than two groups of the minimum size, or dimension no longer configured)" \
        if gap is None or (isinstance(gap, float) and math.isnan(gap)) else f"gap now {gap:.1f} pp"


def record_week(
    url: str,
    week_start: date,
    model_version: str,
    alerts: Sequence[Mapping],
    gaps_now: Mapping[tuple[str, str], float | None],
    run_id: str,
) -> RecordOutcome:
    """Record one evaluation of a week: open an alert per new breach, leave known ones
    alone (exactly once), reopen a resolved one that breaches again, and resolve every
    open alert of the week that this evaluation no longer finds, saying why.

    alerts: the breaches of this evaluation (messages.alert_payload). gaps_now: every
    (product_id, dimension) gap of this evaluation, for the resolution text.
    """
    outcome = RecordOutcome()
    with connect(url) as conn:
        ensure_schema(conn)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            existing = {
                (r["product_id"], r["dimension"], r["model_version"]): r
                for r in conn.execute(
                    f"SELECT alert_id, product_id, dimension, model_version, status FROM {ALERTS} "
                    "WHERE week_start = %s FOR UPDATE", (week_start,)
                )
            }
            found: dict[tuple[str, str, str], int] = {}
            for alert in alerts:
                key = (alert["product_id"], alert["dimension"], model_version)
                row = existing.get(key)
                if row is None:
                    alert_id = conn.execute(
                        f"INSERT INTO {ALERTS} (week_start, product_id, dimension, model_version, "
                        f"{', '.join(_COLUMNS)}, payload, created_by_run, last_seen_run, last_gap_pp) "
                        f"VALUES (%s, %s, %s, %s, {', '.join(['%s'] * len(_COLUMNS))}, %s, %s, %s, %s) "
                        "RETURNING alert_id",
                        (week_start, *key, *[alert[c] for c in _COLUMNS], Jsonb(dict(alert)), run_id, run_id, alert["gap_pp"]),
                    ).fetchone()["alert_id"]
                    outcome.opened.append(alert_id)
                    add_event(conn, week_start, "opened", alert_id, run_id, gap_pp=alert["gap_pp"])
                else:
                    alert_id = row["alert_id"]
                    reopen = row["status"] == "resolved"
                    conn.execute(
                        f"UPDATE {ALERTS} SET last_seen_at = now(), last_seen_run = %s, last_gap_pp = %s"
                        + (", status = 'open', resolved_at = NULL, resolved_by_run = NULL, resolution = NULL,"
                           " reopened = reopened + 1" if reopen else "")
                        + " WHERE alert_id = %s",
                        (run_id, alert["gap_pp"], alert_id),
                    )
                    (outcome.reopened if reopen else outcome.still_open).append(alert_id)
                    if reopen:
                        add_event(conn, week_start, "reopened", alert_id, run_id, gap_pp=alert["gap_pp"])
                found[key] = alert_id
                outcome.alert_ids[(alert["product_id"], alert["dimension"])] = alert_id
            for (product, dimension, version), row in existing.items():
                if row["status"] != "open" or (product, dimension, version) in found:
                    continue
                successor = found.get((product, dimension, model_version))
                why = (f"re-evaluated by run {run_id} with model_version {model_version}: "
                       + (f"still over the threshold, now alert #{successor}" if successor
                          else _gap_text(gaps_now.get((product, dimension)))))
                conn.execute(
                    f"UPDATE {ALERTS} SET status = 'resolved', resolved_at = now(), resolved_by_run = %s, "
                    "resolution = %s WHERE alert_id = %s", (run_id, why, row["alert_id"]),
                )
                outcome.resolved.append(row["alert_id"])
                add_event(conn, week_start, "resolved", row["alert_id"], run_id, resolution=why)
            add_event(conn, week_start, "evaluated", None, run_id, model_version=model_version, breaches=len(alerts),
                   opened=outcome.opened, reopened=outcome.reopened, resolved=outcome.resolved)
    return outcome


def alerts(url: str, week_start: date | None = None) -> list[dict]:
    """The alerts (all, or one week's), oldest first: what compliance sees in the table."""
    with connect(url) as conn:
        ensure_schema(conn)
        where, params = ("WHERE week_start = %s", (week_start,)) if week_start else ("", ())
        return conn.execute(f"SELECT * FROM {ALERTS} {where} ORDER BY alert_id", params).fetchall()


def events_after(conn: psycopg.Connection, event_id: int, limit: int = 50) -> list[dict]:
    return conn.execute(
        f"SELECT e.*, a.product_id, a.dimension FROM {EVENTS} e LEFT JOIN {ALERTS} a ON a.alert_id = e.alert_id "
        "WHERE e.event_id > %s ORDER BY e.event_id LIMIT %s", (event_id, limit)
    ).fetchall()


def undelivered(conn: psycopg.Connection) -> list[dict]:
    return conn.execute(f"SELECT * FROM {UNDELIVERED} ORDER BY alert_id").fetchall()
