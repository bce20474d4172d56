"""Compliance's alert workflow: acknowledge, assign, comment on and resolve an alert.

Every action is one transaction that changes the alert's row (who acknowledged it, who
it is assigned to, its resolution) and appends the action to the audit trail with who
did it, when and why. The trail is append-only (a trigger refuses changes), so what
was decided about a breach, and on what grounds, stays on record. A resolved alert
takes comments only: a breach that comes back opens a new alert (outbox.record_week).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from nbp_assets.alerts import outbox
from nbp_assets.alerts.outbox import ALERTS, EVENTS, WEEKS

ACTIONS = ("acknowledged", "assigned", "commented", "resolved")


class WorkflowError(ValueError):
    """The action cannot be taken; the message says why, and nothing was recorded."""


@dataclass(frozen=True)
class Action:
    """One workflow step as compliance takes it."""

    alert_id: int
    action: str  # one of ACTIONS
    actor: str  # who
    reason: str  # why (for a comment: the comment)
    assignee: str | None = None  # for "assigned"


def take(url: str, step: Action) -> dict:
    """Apply the step and record it in the trail; the alert as it now stands."""
    if step.action not in ACTIONS:
        raise WorkflowError(f"unknown action {step.action!r}: expected one of {', '.join(ACTIONS)}")
    if not step.actor.strip():
        raise WorkflowError("who is acting must be named (--by)")
    if not step.reason.strip():
        raise WorkflowError(f"{step.action}: say why (--reason): the audit trail records it")
    if step.action == "assigned" and not (step.assignee or "").strip():
        raise WorkflowError("assigned: name whom to (--to)")
    with outbox.connect(url) as conn:
        outbox.ensure_schema(conn)
        with conn.transaction():
            row = conn.execute(f"SELECT * FROM {ALERTS} WHERE alert_id = %s FOR UPDATE", (step.alert_id,)).fetchone()
            if row is None:
                raise WorkflowError(f"no alert #{step.alert_id} in {ALERTS}")
            if row["status"] == "resolved" and step.action != "commented":
                raise WorkflowError(
                    f"alert #{step.alert_id} is already resolved ({row['resolution']}); it takes comments only"
                )
            if step.action == "acknowledged":
                if row["acknowledged_at"] is not None:
                    raise WorkflowError(
                        f"alert #{step.alert_id} was already acknowledged by "
                        f"{row['acknowledged_by']} at {row['acknowledged_at']:%Y-%m-%d %H:%M %Z}"
                    )
                conn.execute(
                    f"UPDATE {ALERTS} SET acknowledged_at = now(), acknowledged_by = %s WHERE alert_id = %s",
                    (step.actor, step.alert_id),
                )
            elif step.action == "assigned":
                conn.execute(f"UPDATE {ALERTS} SET assignee = %s WHERE alert_id = %s", (step.assignee, step.alert_id))
            elif step.action == "resolved":
                conn.execute(
                    f"UPDATE {ALERTS} SET status = 'resolved', resolved_at = now(), resolved_by = %s, resolution = %s "
                    "WHERE alert_id = %s",
                    (step.actor, f"resolved by {step.actor}: {step.reason}", step.alert_id),
                )
            detail = {"reason": step.reason} | ({"assignee": step.assignee} if step.action == "assigned" else {})
            if step.action == "assigned" and row["assignee"]:
                detail["previous_assignee"] = row["assignee"]
            outbox.add_event(conn, row["week_start"], step.action, step.alert_id, actor=step.actor, **detail)
            return conn.execute(f"SELECT * FROM {ALERTS} WHERE alert_id = %s", (step.alert_id,)).fetchone()


def listing(url: str, status: str = "open") -> list[dict]:
    """Alerts by status ('open', 'resolved' or 'all'), newest first."""
    where = "" if status == "all" else "WHERE status = %s"
    with outbox.connect(url) as conn:
        outbox.ensure_schema(conn)
        return conn.execute(
            f"SELECT * FROM {ALERTS} {where} ORDER BY alert_id DESC", () if status == "all" else (status,)
        ).fetchall()


def alert(url: str, alert_id: int) -> dict:
    with outbox.connect(url) as conn:
        outbox.ensure_schema(conn)
        row = conn.execute(f"SELECT * FROM {ALERTS} WHERE alert_id = %s", (alert_id,)).fetchone()
    if row is None:
        raise WorkflowError(f"no alert #{alert_id} in {ALERTS}")
    return row


def trail(url: str, alert_ids: list[int]) -> list[dict]:
    """The audit trail of these alerts, oldest first."""
    with outbox.connect(url) as conn:
        outbox.ensure_schema(conn)
        return conn.execute(
            f"SELECT * FROM {EVENTS} WHERE alert_id = ANY(%s) ORDER BY event_id", (list(alert_ids),)
        ).fetchall()


def weeks_of(url: str, alert_id: int) -> list[date]:
    with outbox.connect(url) as conn:
        return [
            r["week_start"]
            for r in conn.execute(
                f"SELECT week_start FROM {WEEKS} WHERE alert_id = %s ORDER BY week_start", (alert_id,)
            )
        ]


def alerts_of_week(url: str, week_start: date) -> list[dict]:
    """The alerts that count this week among their breached weeks (any status)."""
    with outbox.connect(url) as conn:
        outbox.ensure_schema(conn)
        return conn.execute(
            f"SELECT a.* FROM {ALERTS} a WHERE EXISTS (SELECT FROM {WEEKS} w WHERE w.alert_id = a.alert_id "
            "AND w.week_start = %s) ORDER BY a.alert_id",
            (week_start,),
        ).fetchall()


def describe_step(event: dict) -> str:
    """One trail entry for a person: when, what, who, why."""
    detail = event.get("detail") or {}
    why = detail.get("reason") or detail.get("resolution") or ""
    extra = {
        "assigned": f" to {detail.get('assignee')}",
        "opened": f" (gap {detail.get('gap_pp')} pp"
        + (f", relapse of #{detail['relapse_of']})" if detail.get("relapse_of") else ")"),
        "week_added": f" (week {event.get('week_start')}, gap {detail.get('gap_pp')} pp, {detail.get('weeks_breached')} week(s))",
        "week_cleared": f" (week {event.get('week_start')} no longer breaches, {detail.get('weeks_breached')} week(s))",
        "delivered": f" via {event.get('channel')}",
        "delivery_failed": f" via {event.get('channel')}: {detail.get('error')}",
    }.get(event["event"], "")
    who = event.get("actor") or (f"run {event['run_id']}" if event.get("run_id") else None)
    return (
        f"{event['at']:%Y-%m-%d %H:%M:%S %Z}  {event['event']}{extra}"
        + (f" by {who}" if who else "")
        + (f": {why}" if why else "")
    )
