"""The compliance outbox in PostgreSQL: every nbp.fairness_breach alert, durably, first.

Tables (schema `compliance`, created on first use and migrated in place by schema.py;
see docs/fairness.md):
- fairness_alerts: one alert per breach of (product_id, dimension, model_version). While
  the breach persists week after week it stays one open alert whose weeks_breached
  grows; a new alert opens only after it is resolved and the breach comes back (a
  relapse), or for a new model_version. week_start, last_week and last_gap_pp are the
  first week it counts, the latest, and the latest's gap, whatever order the weeks ran in.
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

from nbp_assets.alerts.schema import (  # noqa: F401  the outbox's names, used by its readers
    ALERT_TYPE,
    ALERTS,
    DELIVERIES,
    EVENTS,
    LOCK_ID,
    OPS_ALERTS,
    OPS_DELIVERIES,
    SCHEMA,
    UNDELIVERED,
    WEEKS,
    ensure_schema,
)
from nbp_assets.publish import postgres as pg

_COLUMNS = [
    "highest_group",
    "highest_rate",
    "highest_customers",
    "lowest_group",
    "lowest_rate",
    "lowest_customers",
    "gap_pp",
    "threshold_pp",
    "eligibility_pp",
    "ranking_pp",
    "attributable_to",
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
    conn = pg.connect(url)  # autocommit; errors name host and database, never the password
    conn.row_factory = dict_row
    return conn


def json_safe(value):
    """`value` with NaN and infinite floats as null: PostgreSQL's jsonb refuses them, and a gap
    that could not be measured (a group with no customers) is unknown, not a number."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def add_event(
    conn,
    week: date | None,
    event: str,
    alert_id: int | None = None,
    run_id: str | None = None,
    channel: str | None = None,
    actor: str | None = None,
    **detail,
) -> None:
    """Append to the audit trail (never updated: see the trigger in MIGRATION)."""
    conn.execute(
        f"INSERT INTO {EVENTS} (week_start, alert_id, event, channel, run_id, actor, detail) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (week, alert_id, event, channel, run_id, actor, Jsonb(json_safe(detail))),
    )


def _gap_text(gap: float | None) -> str:
    return (
        "not judged (fewer than two groups of the minimum size, or dimension no longer configured)"
        if gap is None or (isinstance(gap, float) and math.isnan(gap))
        else f"gap now {gap:.1f} pp"
    )


def _add_week(conn, alert_id: int, week_start: date, gap_pp: float, run_id: str) -> tuple[bool, int]:
    """Count the week for the alert (re-runs refresh it); (was it new, weeks now)."""
    new = conn.execute(
        f"INSERT INTO {WEEKS} (alert_id, week_start, gap_pp, run_id) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (alert_id, week_start) DO UPDATE SET gap_pp = EXCLUDED.gap_pp, run_id = EXCLUDED.run_id, "
        "seen_at = now() RETURNING (xmax = 0) AS inserted",
        (alert_id, week_start, gap_pp, run_id),
    ).fetchone()["inserted"]
    return new, _recount(conn, alert_id)


def _recount(conn, alert_id: int) -> int:
    """Bring the alert's span up to date with the weeks it counts, whatever order they ran
    in: how many, the first, the latest and the latest one's gap. An alert left with no
    week (every week cleared) keeps its last span, so it still says what it was about."""
    return conn.execute(
        f"UPDATE {ALERTS} a SET weeks_breached = w.n, week_start = coalesce(w.first, a.week_start), "
        "last_week = coalesce(w.last, a.last_week), last_gap_pp = coalesce(w.last_gap, a.last_gap_pp) FROM "
        "(SELECT count(*) AS n, min(week_start) AS first, max(week_start) AS last, "
        f"(array_agg(gap_pp ORDER BY week_start DESC))[1] AS last_gap FROM {WEEKS} WHERE alert_id = %s) w "
        "WHERE a.alert_id = %s RETURNING a.weeks_breached",
        (alert_id, alert_id),
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
    evaluation = _Evaluation(week_start, model_version, run_id, gaps_now)
    with connect(url) as conn:
        ensure_schema(conn)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
            open_now = _open_alerts(conn)
            found: dict[tuple[str, str, str], int] = {}
            for alert in alerts:
                key = (alert["product_id"], alert["dimension"], model_version)
                row = open_now.get(key)
                if row is not None:
                    alert_id = _join_open_alert(conn, evaluation, row["alert_id"], alert, outcome)
                elif (judged := _judged_by_resolved_alert(conn, key, week_start)) is not None:
                    outcome.alert_ids[key[:2]] = judged  # re-run of a week a resolved alert already counted
                    continue
                else:
                    alert_id = _open_alert(conn, evaluation, key, alert, outcome)
                found[key] = alert_id
                outcome.alert_ids[key[:2]] = alert_id
            for key, row in open_now.items():
                if key not in found:
                    _settle_unfound(conn, evaluation, key, row, found, outcome)
            add_event(
                conn,
                week_start,
                "evaluated",
                None,
                run_id,
                model_version=model_version,
                breaches=len(alerts),
                opened=outcome.opened,
                still_open=outcome.still_open,
                resolved=outcome.resolved,
            )
    return outcome


@dataclass(frozen=True)
class _Evaluation:
    """The week being recorded, and by which run and model."""

    week_start: date
    model_version: str
    run_id: str
    gaps_now: Mapping[tuple[str, str], float | None]


def _open_alerts(conn: psycopg.Connection) -> dict[tuple[str, str, str], dict]:
    """The open alerts by (product, dimension, model_version), locked for this evaluation."""
    rows = conn.execute(
        f"SELECT alert_id, product_id, dimension, model_version, last_week FROM {ALERTS} "
        "WHERE status = 'open' FOR UPDATE"
    )
    return {(r["product_id"], r["dimension"], r["model_version"]): r for r in rows}


def _judged_by_resolved_alert(conn: psycopg.Connection, key: tuple[str, str, str], week_start: date) -> int | None:
    """The newest alert of this breach that already counted this week, if any."""
    judged = conn.execute(
        f"SELECT a.alert_id FROM {ALERTS} a JOIN {WEEKS} w ON w.alert_id = a.alert_id "
        "WHERE a.product_id = %s AND a.dimension = %s AND a.model_version = %s AND w.week_start = %s "
        "ORDER BY a.alert_id DESC LIMIT 1",
        (*key, week_start),
    ).fetchone()
    return None if judged is None else judged["alert_id"]


def _open_alert(
    conn: psycopg.Connection, ev: _Evaluation, key: tuple[str, str, str], alert: Mapping, outcome: RecordOutcome
) -> int:
    """A new alert for a breach without an open one: a relapse when an earlier alert of the
    same breach was resolved."""
    previous = conn.execute(
        f"SELECT max(alert_id) AS a FROM {ALERTS} WHERE product_id = %s AND dimension = %s AND model_version = %s",
        key,
    ).fetchone()["a"]
    alert_id = conn.execute(
        f"INSERT INTO {ALERTS} (week_start, last_week, product_id, dimension, model_version, "
        f"{', '.join(_COLUMNS)}, payload, created_by_run, last_seen_run, last_gap_pp, relapse_of) "
        f"VALUES (%s, %s, %s, %s, %s, {', '.join(['%s'] * len(_COLUMNS))}, %s, %s, %s, %s, %s) "
        "RETURNING alert_id",
        (
            ev.week_start,
            ev.week_start,
            *key,
            *[alert[c] for c in _COLUMNS],
            Jsonb(json_safe(dict(alert))),
            ev.run_id,
            ev.run_id,
            alert["gap_pp"],
            previous,
        ),
    ).fetchone()["alert_id"]
    outcome.opened.append(alert_id)
    if previous is not None:
        outcome.relapsed[alert_id] = previous
    relapse = {"relapse_of": previous} if previous is not None else {}
    add_event(conn, ev.week_start, "opened", alert_id, ev.run_id, gap_pp=alert["gap_pp"], **relapse)
    _add_week(conn, alert_id, ev.week_start, alert["gap_pp"], ev.run_id)
    outcome.weeks_breached[alert_id] = 1
    return alert_id


def _join_open_alert(
    conn: psycopg.Connection, ev: _Evaluation, alert_id: int, alert: Mapping, outcome: RecordOutcome
) -> int:
    """The breach persists: this week joins its open alert (once, however often it re-runs)."""
    # last_gap_pp is the latest week's, not this run's: _add_week recounts it
    conn.execute(
        f"UPDATE {ALERTS} SET last_seen_at = now(), last_seen_run = %s WHERE alert_id = %s", (ev.run_id, alert_id)
    )
    new, weeks = _add_week(conn, alert_id, ev.week_start, alert["gap_pp"], ev.run_id)
    if new:
        add_event(conn, ev.week_start, "week_added", alert_id, ev.run_id, gap_pp=alert["gap_pp"], weeks_breached=weeks)
    outcome.still_open.append(alert_id)
    outcome.weeks_breached[alert_id] = weeks
    return alert_id


def _settle_unfound(
    conn: psycopg.Connection,
    ev: _Evaluation,
    key: tuple[str, str, str],
    row: Mapping,
    found: Mapping[tuple[str, str, str], int],
    outcome: RecordOutcome,
) -> None:
    """An open alert this evaluation did not find: this week comes off it, and it is resolved
    when this week is its latest evidence (or a newer model_version took over)."""
    product, dimension, version = key
    alert_id = row["alert_id"]
    if version == ev.model_version:
        cleared = conn.execute(
            f"DELETE FROM {WEEKS} WHERE alert_id = %s AND week_start = %s RETURNING 1", (alert_id, ev.week_start)
        ).fetchone()
        if cleared:
            weeks = _recount(conn, alert_id)
            gap = ev.gaps_now.get((product, dimension))
            add_event(conn, ev.week_start, "week_cleared", alert_id, ev.run_id, weeks_breached=weeks, gap_pp=gap)
        last = conn.execute(f"SELECT max(week_start) AS w FROM {WEEKS} WHERE alert_id = %s", (alert_id,)).fetchone()[
            "w"
        ]
    else:
        last = row["last_week"]
    if last is not None and ev.week_start < last:
        return  # an older week: the breach persists in later weeks
    successor = found.get((product, dimension, ev.model_version))
    why = f"re-evaluated by run {ev.run_id} with model_version {ev.model_version}: " + (
        f"still over the threshold, now alert #{successor}"
        if successor
        else _gap_text(ev.gaps_now.get((product, dimension)))
    )
    conn.execute(
        f"UPDATE {ALERTS} SET status = 'resolved', resolved_at = now(), resolved_by_run = %s, "
        "resolution = %s WHERE alert_id = %s",
        (ev.run_id, why, alert_id),
    )
    outcome.resolved.append(alert_id)
    add_event(conn, ev.week_start, "resolved", alert_id, ev.run_id, resolution=why)


def alerts(url: str, week_start: date | None = None) -> list[dict]:
    """The alerts (all, or one week's), oldest first: what compliance sees in the table."""
    with connect(url) as conn:
        ensure_schema(conn)
        where, params = ("WHERE week_start = %s", (week_start,)) if week_start else ("", ())
        return conn.execute(f"SELECT * FROM {ALERTS} {where} ORDER BY alert_id", params).fetchall()


def events_after(conn: psycopg.Connection, event_id: int, limit: int = 50) -> list[dict]:
    return conn.execute(
        f"SELECT e.*, a.product_id, a.dimension FROM {EVENTS} e LEFT JOIN {ALERTS} a ON a.alert_id = e.alert_id "
        "WHERE e.event_id > %s ORDER BY e.event_id LIMIT %s",
        (event_id, limit),
    ).fetchall()


def undelivered(conn: psycopg.Connection) -> list[dict]:
    return conn.execute(f"SELECT * FROM {UNDELIVERED} ORDER BY alert_id").fetchall()
