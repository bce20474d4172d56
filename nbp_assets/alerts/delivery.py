"""Delivering the outbox: every undelivered alert to every configured channel, with back-off.

Two kinds of alert go through it the same way: compliance's nbp.fairness_breach alerts
(kind "fairness") and operations alerts (kind "ops": a failed run or blocking check, a
week not published in time).

An alert that no channel has accepted yet gets a delivery row for each configured
channel (a channel added later rescues a backlog; alerts already delivered are not
re-sent to it). Each due row is locked (FOR UPDATE SKIP LOCKED), sent, and its outcome
committed with an audit event, so two deliverers never send the same row. A failure
waits retry_base x 2^(attempts-1) seconds, capped at retry_max, and is retried for as
long as it takes: nothing is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from nbp_assets.alerts import outbox
from nbp_assets.alerts.channels import redact
from nbp_assets.alerts.outbox import ALERTS, DELIVERIES, OPS_ALERTS, OPS_DELIVERIES

MAX_ERROR_CHARS = 500
TABLES = {"fairness": (ALERTS, DELIVERIES), "ops": (OPS_ALERTS, OPS_DELIVERIES)}


@dataclass(frozen=True)
class Attempt:
    alert_id: int
    week_start: date
    channel: str
    delivered: bool
    attempts: int
    error: str | None = None
    next_attempt_at: datetime | None = None
    kind: str = "fairness"


def backoff_seconds(attempts: int, base: float, cap: float) -> float:
    """Wait after the attempts-th consecutive failure: base, 2 x base, 4 x base ... <= cap."""
    return min(cap, base * 2 ** max(0, attempts - 1))


def deliver_due(
    url: str,
    channels: Mapping,
    now: datetime | None = None,
    retry_base_seconds: float = 60.0,
    retry_max_seconds: float = 3600.0,
    budget_seconds: float = 30.0,
    max_attempts: int = 50,
    kind: str = "fairness",
) -> list[Attempt]:
    """Attempt every delivery that is due, each at most once; stop starting new ones after
    budget_seconds (a sensor tick has about a minute). now: a fixed clock for tests."""

    def clock() -> datetime:
        return now or datetime.now(timezone.utc)

    alerts_table, deliveries_table = TABLES[kind]
    secrets = [s for channel in channels.values() for s in channel.secrets if s]
    attempts: list[Attempt] = []
    tried: list[str] = []
    started = time.monotonic()
    with outbox.connect(url) as conn:
        outbox.ensure_schema(conn)
        if channels:
            conn.execute(
                f"INSERT INTO {deliveries_table} (alert_id, channel, next_attempt_at) "
                f"SELECT a.alert_id, c.channel, %s FROM {alerts_table} a CROSS JOIN unnest(%s::text[]) AS c(channel) "
                "WHERE a.delivered_at IS NULL ON CONFLICT DO NOTHING",
                (clock(), list(channels)),
            )
        while channels and len(attempts) < max_attempts and time.monotonic() - started < budget_seconds:
            state = (
                "a.status, a.resolution, a.weeks_breached, a.last_week"
                if kind == "fairness"
                else "'open' AS status, NULL AS resolution"
            )
            with conn.transaction():
                row = conn.execute(
                    f"SELECT d.alert_id, d.channel, d.attempts, a.week_start, a.payload, {state} "
                    f"FROM {deliveries_table} d JOIN {alerts_table} a ON a.alert_id = d.alert_id "
                    "WHERE d.state = 'pending' AND d.channel = ANY(%s) AND d.next_attempt_at <= %s "
                    "AND d.alert_id::text || '/' || d.channel <> ALL(%s::text[]) "
                    "ORDER BY d.next_attempt_at, d.alert_id, d.channel LIMIT 1 FOR UPDATE OF d SKIP LOCKED",
                    (list(channels), clock(), tried),
                ).fetchone()
                if row is None:
                    break
                tried.append(f"{row['alert_id']}/{row['channel']}")
                attempts.append(
                    _attempt(
                        conn,
                        row,
                        channels[row["channel"]],
                        secrets,
                        clock(),
                        retry_base_seconds,
                        retry_max_seconds,
                        kind,
                    )
                )
    return attempts


def _attempt(
    conn, row: Mapping, channel, secrets: list[str], at: datetime, base: float, cap: float, kind: str
) -> Attempt:
    alerts_table, deliveries_table = TABLES[kind]
    alert = {**row["payload"], "alert_id": row["alert_id"], "status": row["status"], "resolution": row["resolution"]}
    if kind == "fairness":  # the alert as it stands: how many weeks it has breached so far, first and latest
        alert |= {
            "alert_weeks_breached": row["weeks_breached"],
            "alert_first_week": str(row["week_start"]),
            "alert_last_week": str(row["last_week"]),
        }
    # Operations alerts are not in the fairness trail's foreign key: their id goes in the detail.
    trail_id, prefix = (row["alert_id"], "") if kind == "fairness" else (None, "ops_")
    ids = {} if kind == "fairness" else {"ops_alert_id": row["alert_id"]}
    count = row["attempts"] + 1
    try:
        note = channel.send(alert)
    except Exception as exc:  # any failure of any channel: keep the alert, say why, retry later
        error = redact(f"{type(exc).__name__}: {exc}", secrets)[:MAX_ERROR_CHARS]
        retry_at = at + timedelta(seconds=backoff_seconds(count, base, cap))
        conn.execute(
            f"UPDATE {deliveries_table} SET attempts = %s, last_attempt_at = %s, last_error = %s, next_attempt_at = %s "
            "WHERE alert_id = %s AND channel = %s",
            (count, at, error, retry_at, row["alert_id"], row["channel"]),
        )
        outbox.add_event(
            conn,
            row["week_start"],
            f"{prefix}delivery_failed",
            trail_id,
            channel=row["channel"],
            attempt=count,
            error=error,
            next_attempt_at=retry_at.isoformat(),
            **ids,
        )
        return Attempt(row["alert_id"], row["week_start"], row["channel"], False, count, error, retry_at, kind)
    note = redact(note, secrets) if note else None
    conn.execute(
        f"UPDATE {deliveries_table} SET state = 'delivered', attempts = %s, last_attempt_at = %s, delivered_at = %s, "
        "last_error = %s WHERE alert_id = %s AND channel = %s",
        (count, at, at, note, row["alert_id"], row["channel"]),
    )
    conn.execute(
        f"UPDATE {alerts_table} SET delivered_at = coalesce(delivered_at, %s) WHERE alert_id = %s",
        (at, row["alert_id"]),
    )
    outbox.add_event(
        conn,
        row["week_start"],
        f"{prefix}delivered",
        trail_id,
        channel=row["channel"],
        attempt=count,
        **ids,
        **({"note": note} if note else {}),
    )
    return Attempt(row["alert_id"], row["week_start"], row["channel"], True, count, kind=kind)
