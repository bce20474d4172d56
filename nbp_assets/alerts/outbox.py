"""The compliance outbox in PostgreSQL: every nbp.fairness_breach alert, durably, first.

Tables (schema `compliance`, created on first use and migrated in place; see docs/fairness.md):
- fairness_alerts: one alert per breach of (product_id, dimension, model_version). While
  the breach persists week after week it stays one open alert whose weeks_breached
  grows; a new alert opens only after it is resolved and the breach comes back (a
  relapse), or for a new model_version. week_start is the first week it covers.
  Compliance's workflow (acknowledged, assignee, resolved_by) is on the row too.
- fairness_alert_weeks: the weeks each alert was found breaching, with that week's gap.
- fairness_alert_deliveries: one row per alert and channel: pending/delivered,
  attempts, next_attempt_at (back-off), last_error.
- fairness_alert_events: append-only audit trail (a trigger refuses UPDATE, DELETE and
  TRUNCATE): evaluation, opening, each week added or cleared, resolution, deliveries and
  every workflow action with who (actor), when (at) and why (detail.reason).
- ops_alerts, ops_alert_deliveries: operations alerts (a failed weekly run or blocking
  check, a week not published in time), delivered to the same channels.
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
WEEKS = f"{SCHEMA}.fairness_alert_weeks"
DELIVERIES = f"{SCHEMA}.fairness_alert_deliveries"
EVENTS = f"{SCHEMA}.fairness_alert_events"
UNDELIVERED = f"{SCHEMA}.fairness_alerts_undelivered"
OPS_ALERTS = f"{SCHEMA}.ops_alerts"
OPS_DELIVERIES = f"{SCHEMA}.ops_alert_deliveries"
ALERT_TYPE = "nbp.fairness_breach"
_LOCK_ID = 107_000_004  # serialises outbox writers: DDL and a week's evaluation

_DELIVERY_COLUMNS = """channel         TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        last_attempt_at TIMESTAMPTZ,
        last_error      TEXT,
        delivered_at    TIMESTAMPTZ,
        PRIMARY KEY (alert_id, channel)"""

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
        reopened          INTEGER NOT NULL DEFAULT 0
    )""",
    f"""CREATE TABLE IF NOT EXISTS {DELIVERIES} (
        alert_id        BIGINT NOT NULL REFERENCES {ALERTS} (alert_id),
        {_DELIVERY_COLUMNS}
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

# Version 2 (issue 10): one alert per (product, dimension, model_version) with a growing
# count of weeks, compliance's workflow, an enforced append-only trail, operations
# alerts. Every statement is idempotent: a database of any earlier version is brought
# up to date in place, its alerts kept.
MIGRATION = [
    *(f"ALTER TABLE {ALERTS} ADD COLUMN IF NOT EXISTS {column}" for column in (
        "last_week DATE", "weeks_breached INTEGER NOT NULL DEFAULT 1", "relapse_of BIGINT",
        "assignee TEXT", "acknowledged_at TIMESTAMPTZ", "acknowledged_by TEXT", "resolved_by TEXT")),
    f"UPDATE {ALERTS} SET last_week = week_start WHERE last_week IS NULL",
    f"ALTER TABLE {ALERTS} DROP CONSTRAINT IF EXISTS fairness_alerts_once",
    f"""CREATE TABLE IF NOT EXISTS {WEEKS} (
        alert_id   BIGINT NOT NULL REFERENCES {ALERTS} (alert_id),
        week_start DATE NOT NULL,
        gap_pp     NUMERIC(7,4) NOT NULL,
        run_id     TEXT NOT NULL,
        seen_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (alert_id, week_start)
    )""",
    f"""INSERT INTO {WEEKS} (alert_id, week_start, gap_pp, run_id, seen_at)
        SELECT alert_id, week_start, last_gap_pp, last_seen_run, last_seen_at FROM {ALERTS}
        WHERE NOT EXISTS (SELECT FROM {WEEKS} w WHERE w.alert_id = {ALERTS}.alert_id)""",
    f"ALTER TABLE {EVENTS} ADD COLUMN IF NOT EXISTS actor TEXT",
    f"ALTER TABLE {EVENTS} ALTER COLUMN week_start DROP NOT NULL",
    # Per-week alerts of one breach, open side by side before version 2, become the oldest one.
    f"""CREATE TEMP TABLE nbp_merge ON COMMIT DROP AS
        SELECT alert_id, first_value(alert_id) OVER (PARTITION BY product_id, dimension, model_version
                                                    ORDER BY week_start, alert_id) AS keep
        FROM {ALERTS} WHERE status = 'open'""",
    f"""INSERT INTO {WEEKS} (alert_id, week_start, gap_pp, run_id, seen_at)
        SELECT m.keep, w.week_start, w.gap_pp, w.run_id, w.seen_at FROM {WEEKS} w
        JOIN nbp_merge m ON m.alert_id = w.alert_id AND m.keep <> m.alert_id ON CONFLICT DO NOTHING""",
    f"""INSERT INTO {EVENTS} (week_start, alert_id, event, actor, detail)
        SELECT a.week_start, a.alert_id, 'resolved', 'outbox migration',
               jsonb_build_object('resolution', 'merged into alert #' || m.keep, 'reason',
                                  'one alert per product, dimension and model_version')
        FROM {ALERTS} a JOIN nbp_merge m ON m.alert_id = a.alert_id AND m.keep <> m.alert_id""",
    f"""UPDATE {ALERTS} a SET status = 'resolved', resolved_at = now(), resolved_by = 'outbox migration',
               resolution = 'merged into alert #' || m.keep || ' (one alert per product, dimension and model_version)'
        FROM nbp_merge m WHERE a.alert_id = m.alert_id AND m.keep <> m.alert_id""",
    f"""UPDATE {ALERTS} a SET weeks_breached = w.n, last_week = w.last
        FROM (SELECT alert_id, count(*) AS n, max(week_start) AS last FROM {WEEKS} GROUP BY alert_id) w
        WHERE w.alert_id = a.alert_id AND a.status = 'open'""",
    f"""CREATE UNIQUE INDEX IF NOT EXISTS fairness_alerts_one_open
        ON {ALERTS} (product_id, dimension, model_version) WHERE status = 'open'""",
    f"""CREATE OR REPLACE FUNCTION {SCHEMA}.refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit trail % is append-only', TG_TABLE_NAME; END $$""",
    f"DROP TRIGGER IF EXISTS fairness_alert_events_append_only ON {EVENTS}",
    f"""CREATE TRIGGER fairness_alert_events_append_only BEFORE UPDATE OR DELETE ON {EVENTS}
        FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_audit_change()""",
    f"DROP TRIGGER IF EXISTS fairness_alert_events_no_truncate ON {EVENTS}",
    f"""CREATE TRIGGER fairness_alert_events_no_truncate BEFORE TRUNCATE ON {EVENTS}
        FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_audit_change()""",
    f"""CREATE TABLE IF NOT EXISTS {OPS_ALERTS} (
        alert_id     BIGSERIAL PRIMARY KEY,
        alert_type   TEXT NOT NULL,
        dedupe_key   TEXT NOT NULL UNIQUE,
        week_start   DATE,
        run_id       TEXT,
        summary      TEXT NOT NULL,
        payload      JSONB NOT NULL,
        created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        delivered_at TIMESTAMPTZ
    )""",
    f"""CREATE TABLE IF NOT EXISTS {OPS_DELIVERIES} (
        alert_id        BIGINT NOT NULL REFERENCES {OPS_ALERTS} (alert_id),
        {_DELIVERY_COLUMNS}
    )""",
]
# The last object MIGRATION creates: present = the schema is up to date.
_UP_TO_DATE = OPS_DELIVERIES

_COLUMNS = [
    "highest_group", "highest_rate", "highest_customers", "lowest_group", "lowest_rate",
    "lowest_customers", "gap_pp", "threshold_pp", "eligibility_pp", "ranking_pp", "attributable_to",
]


@dataclass(frozen=True)
class RecordOutcome:
    """What one evaluation of a week did to the outbox (alert ids)."""

    opened: list[int] = field(default_factory=list)  # new alerts (relapses included)
    relapsed: dict[int, int] = field(default_factory=dict)  # new alert -> the resolved one it follows
    still_open: list[int] = field(default_factory=list)  # open alerts this week's breach was added to
    resolved: list[int] = field(default_factory=list)
    alert_ids: dict[tuple[str, str], int] = field(default_factory=dict)  # (product_id, dimension) -> breach's alert
    weeks_breached: dict[int, int] = field(default_factory=dict)  # alert -> weeks it covers, after this evaluation


def connect(url: str) -> psycopg.Connection:
    conn = _connect(url)  # autocommit; errors name host and database, never the password
    conn.row_factory = dict_row
    return conn


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create the outbox, or bring an earlier version up to date (idempotent, serialised)."""
    if conn.execute("SELECT to_regclass(%s) AS v", (_UP_TO_DATE,)).fetchone()["v"] is not None:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        # Checked first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when it exists.
        if not conn.execute("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = %s) AS e", (SCHEMA,)).fetchone()["e"]:
            conn.execute(f"CREATE SCHEMA {SCHEMA}")
        if conn.execute("SELECT to_regclass(%s) AS v", (_UP_TO_DATE,)).fetchone()["v"] is None:
            for statement in DDL + MIGRATION:
                conn.execute(statement)


def add_event(conn, week: date | None, event: str, alert_id: int | None = None, run_id: str | None = None,
              channel: str | None = None, actor: str | None = None, **detail) -> None:
    """Append to the audit trail (never updated: see the trigger in MIGRATION)."""
    conn.execute(
        f"INSERT INTO {EVENTS} (week_start, alert_id, event, channel, run_id, actor, detail) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (week, alert_id, event, channel, run_id, actor, Jsonb(detail)),
    )


def _gap_text(gap: float | None) -> str:
    return "not judged (fewer than two groups of the minimum size, or dimension no longer configured)" \
        if gap is None or (isinstance(gap, float) and math.isnan(gap)) else f"gap now {gap:.1f} pp"


def _add_week(conn, alert_id: int, week_start: date, gap_pp: float, run_id: str) -> tuple[bool, int]:
    """Count the week for the alert (re-runs refresh it); (was it new, weeks now)."""
    new = conn.execute(
        f"INSERT INTO {WEEKS} (alert_id, week_start, gap_pp, run_id) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (alert_id, week_start) DO UPDATE SET gap_pp = EXCLUDED.gap_pp, run_id = EXCLUDED.run_id, "
        "seen_at = now() RETURNING (xmax = 0) AS inserted", (alert_id, week_start, gap_pp, run_id),
    ).fetchone()["inserted"]
    return new, _recount(conn, alert_id)


def _recount(conn, alert_id: int) -> int:
    return conn.execute(
        f"UPDATE {ALERTS} a SET weeks_breached = w.n, last_week = coalesce(w.last, a.last_week) FROM "
        f"(SELECT count(*) AS n, max(week_start) AS last FROM {WEEKS} WHERE alert_id = %s) w "
        "WHERE a.alert_id = %s RETURNING a.weeks_breached", (alert_id, alert_id),
    ).fetchone()["weeks_breached"]


def record_week(
    url: str,
    week_start: date,
    model_version: str,
    alerts: Sequence[Mapping],
    gaps_now: Mapping[tuple[str, str], float | None],
    run_id: str,
) -> RecordOutcome:
    """Record one evaluation of a week.

    A breach joins the open alert of its (product, dimension, model_version), whose
    weeks_breached grows (a re-run of a week counts it once). With no open alert, a new
    one opens, unless a resolved alert already counted this very week (a re-run of a
    judged week is not a relapse). An open alert that this evaluation no longer finds is
    resolved, saying why, when this week is its latest evidence (a backfill of an older,
    clean week does not close a breach that persists in later weeks); a week it had
    counted is taken off it. An open alert of another model_version is resolved when
    this week is at or after its latest week: the new model's own alert takes over.

    alerts: the breaches of this evaluation (messages.alert_payload). gaps_now: every
    (product_id, dimension) gap of this evaluation, for the resolution text.
    """
    outcome = RecordOutcome()
    with connect(url) as conn:
        ensure_schema(conn)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            open_now = {
                (r["product_id"], r["dimension"], r["model_version"]): r
                for r in conn.execute(
                    f"SELECT alert_id, product_id, dimension, model_version, last_week FROM {ALERTS} "
                    "WHERE status = 'open' FOR UPDATE")
            }
            found: dict[tuple[str, str, str], int] = {}
            for alert in alerts:
                key = (alert["product_id"], alert["dimension"], model_version)
                row = open_now.get(key)
                if row is None:
                    judged = conn.execute(
                        f"SELECT a.alert_id FROM {ALERTS} a JOIN {WEEKS} w ON w.alert_id = a.alert_id "
                        "WHERE a.product_id = %s AND a.dimension = %s AND a.model_version = %s AND w.week_start = %s "
                        "ORDER BY a.alert_id DESC LIMIT 1", (*key, week_start)).fetchone()
                    if judged is not None:  # re-run of a week a resolved alert already counted
                        outcome.alert_ids[key[:2]] = judged["alert_id"]
                        continue
                    previous = conn.execute(
                        f"SELECT max(alert_id) AS a FROM {ALERTS} WHERE product_id = %s AND dimension = %s "
                        "AND model_version = %s", key).fetchone()["a"]
                    alert_id = conn.execute(
                        f"INSERT INTO {ALERTS} (week_start, last_week, product_id, dimension, model_version, "
                        f"{', '.join(_COLUMNS)}, payload, created_by_run, last_seen_run, last_gap_pp, relapse_of) "
                        f"VALUES (%s, %s, %s, %s, %s, {', '.join(['%s'] * len(_COLUMNS))}, %s, %s, %s, %s, %s) "
                        "RETURNING alert_id",
                        (week_start, week_start, *key, *[alert[c] for c in _COLUMNS], Jsonb(dict(alert)), run_id,
                         run_id, alert["gap_pp"], previous),
                    ).fetchone()["alert_id"]
                    outcome.opened.append(alert_id)
                    if previous is not None:
                        outcome.relapsed[alert_id] = previous
                    add_event(conn, week_start, "opened", alert_id, run_id, gap_pp=alert["gap_pp"],
                              **({"relapse_of": previous} if previous is not None else {}))
                    _add_week(conn, alert_id, week_start, alert["gap_pp"], run_id)
                    outcome.weeks_breached[alert_id] = 1
                else:
                    alert_id = row["alert_id"]
                    conn.execute(f"UPDATE {ALERTS} SET last_seen_at = now(), last_seen_run = %s, last_gap_pp = %s "
                                 "WHERE alert_id = %s", (run_id, alert["gap_pp"], alert_id))
                    new, weeks = _add_week(conn, alert_id, week_start, alert["gap_pp"], run_id)
                    if new:
                        add_event(conn, week_start, "week_added", alert_id, run_id, gap_pp=alert["gap_pp"],
                                  weeks_breached=weeks)
                    outcome.still_open.append(alert_id)
                    outcome.weeks_breached[alert_id] = weeks
                found[key] = alert_id
                outcome.alert_ids[key[:2]] = alert_id
            for (product, dimension, version), row in open_now.items():
                if (product, dimension, version) in found:
                    continue
                alert_id = row["alert_id"]
                if version == model_version:
                    cleared = conn.execute(f"DELETE FROM {WEEKS} WHERE alert_id = %s AND week_start = %s RETURNING 1",
                                           (alert_id, week_start)).fetchone()
                    if cleared:
                        weeks = _recount(conn, alert_id)
                        add_event(conn, week_start, "week_cleared", alert_id, run_id, weeks_breached=weeks,
                                  gap_pp=gaps_now.get((product, dimension)))
                    last = conn.execute(f"SELECT max(week_start) AS w FROM {WEEKS} WHERE alert_id = %s",
                                        (alert_id,)).fetchone()["w"]
                else:
                    last = row["last_week"]
                if last is not None and week_start < last:
                    continue  # an older week: the breach persists in later weeks
                successor = found.get((product, dimension, model_version))
                why = (f"re-evaluated by run {run_id} with model_version {model_version}: "
                       + (f"still over the threshold, now alert #{successor}" if successor
                          else _gap_text(gaps_now.get((product, dimension)))))
                conn.execute(
                    f"UPDATE {ALERTS} SET status = 'resolved', resolved_at = now(), resolved_by_run = %s, "
                    "resolution = %s WHERE alert_id = %s", (run_id, why, alert_id),
                )
                outcome.resolved.append(alert_id)
                add_event(conn, week_start, "resolved", alert_id, run_id, resolution=why)
            add_event(conn, week_start, "evaluated", None, run_id, model_version=model_version, breaches=len(alerts),
                      opened=outcome.opened, still_open=outcome.still_open, resolved=outcome.resolved)
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
