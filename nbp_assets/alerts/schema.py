"""The compliance outbox's tables in PostgreSQL, and their migration in place.

ensure_schema creates the schema on first use or brings an earlier version up to date;
every statement is idempotent and runs under an advisory lock, so any process (the
asset, a sensor, the CLI) may be first. What each table holds: docs/fairness.md.
"""

from __future__ import annotations

import psycopg

from nbp_assets.core.schemas import create_schema_if_missing

SCHEMA = "compliance"
ALERTS = f"{SCHEMA}.fairness_alerts"
WEEKS = f"{SCHEMA}.fairness_alert_weeks"
DELIVERIES = f"{SCHEMA}.fairness_alert_deliveries"
EVENTS = f"{SCHEMA}.fairness_alert_events"
UNDELIVERED = f"{SCHEMA}.fairness_alerts_undelivered"
OPS_ALERTS = f"{SCHEMA}.ops_alerts"
OPS_DELIVERIES = f"{SCHEMA}.ops_alert_deliveries"
ALERT_TYPE = "nbp.fairness_breach"
LOCK_ID = 107_000_004  # serialises outbox writers: DDL and a week's evaluation

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
    *(
        f"ALTER TABLE {ALERTS} ADD COLUMN IF NOT EXISTS {column}"
        for column in (
            "last_week DATE",
            "weeks_breached INTEGER NOT NULL DEFAULT 1",
            "relapse_of BIGINT",
            "assignee TEXT",
            "acknowledged_at TIMESTAMPTZ",
            "acknowledged_by TEXT",
            "resolved_by TEXT",
        )
    ),
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


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create the outbox, or bring an earlier version up to date (idempotent, serialised)."""
    if conn.execute("SELECT to_regclass(%s) AS v", (_UP_TO_DATE,)).fetchone()["v"] is not None:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        create_schema_if_missing(conn, SCHEMA, "postgres")
        if conn.execute("SELECT to_regclass(%s) AS v", (_UP_TO_DATE,)).fetchone()["v"] is None:
            for statement in DDL + MIGRATION:
                conn.execute(statement)
