"""The sensor that gets nbp.fairness_breach alerts to compliance, in open-source Dagster.

Open-source Dagster has no asset-check sensor, and a run-failure sensor never sees the
fairness check (it warns, it does not fail the run). Nor is one needed: the
fairness_report asset writes each breach to the PostgreSQL outbox in the same step that
evaluates the check, so the outbox is the source of truth and this plain sensor only
delivers it. Every tick (60 s apart) it
- sends every due delivery (delivery.deliver_due: back-off, never drops an alert),
- logs each new audit event once (its cursor is the last event id it has logged),
- records each delivery attempt as an observation of the fairness_report week in the UI,
- and ends with a summary, shown as the tick's skip reason: what is undelivered and why,
  or that no channel is configured.
It launches no runs.
"""

from __future__ import annotations

import dagster as dg

from nbp_assets.alerts import outbox
from nbp_assets.alerts.delivery import Attempt, deliver_due
from nbp_assets.alerts.resource import FairnessAlertsResource
from nbp_assets.core.postgres_resource import PostgresResource
from nbp_assets.core.settings import CHANNEL_SWITCHES

SENSOR_NAME = "nbp_fairness_alert_sensor"
RESOURCE_KEY = "fairness_alerts"
INTERVAL_SECONDS = 60
FAIRNESS_ASSET = dg.AssetKey("fairness_report")
MAX_LISTED = 5


def describe_event(event: dict) -> str:
    detail = event.get("detail") or {}
    if event["event"].startswith("ops_"):
        what = f"operations alert #{detail.get('ops_alert_id')}"
    elif event.get("alert_id"):
        what = f"alert #{event['alert_id']} ({event['week_start']} {event['product_id']} by {event['dimension']})"
    else:
        what = f"week {event['week_start']}"
    delivered = f"via {event.get('channel')} (attempt {detail.get('attempt')})"
    failed = (
        f"via {event.get('channel')} (attempt {detail.get('attempt')}): {detail.get('error')}; "
        f"next attempt {detail.get('next_attempt_at')}"
    )
    extra = {
        "opened": f"gap {detail.get('gap_pp')} pp",
        "week_added": f"gap {detail.get('gap_pp')} pp, {detail.get('weeks_breached')} week(s) breached",
        "week_cleared": f"no longer breaches, {detail.get('weeks_breached')} week(s) breached",
        "resolved": detail.get("reason") or detail.get("resolution", ""),
        "delivered": delivered,
        "ops_delivered": delivered,
        "delivery_failed": failed,
        "ops_delivery_failed": failed,
        "evaluated": f"{detail.get('breaches')} breach(es), model_version {detail.get('model_version')}",
        "assigned": f"to {detail.get('assignee')}: {detail.get('reason')}",
    }.get(event["event"], detail.get("reason", ""))
    who = f" by {event['actor']}" if event.get("actor") else ""
    run = f" [run {event['run_id']}]" if event.get("run_id") else ""
    return f"{event['event']}: {what}{who} {extra}{run}".strip()


def id_list(ids: list[int]) -> str:
    """Alert ids for a person: `#3, #4` or, for a run of three or more, `#1-#26`."""
    runs: list[list[int]] = []
    for i in sorted(set(ids)):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(f"#{r[0]}-#{r[-1]}" if len(r) >= 3 else ", ".join(f"#{i}" for i in r) for r in runs)


def delivered_where(attempts: list[Attempt], channels: dict) -> str:
    """What this tick delivered, per channel: `#12, #13 to maildir /home/.nbp/alerts/maildir`."""
    by_channel: dict[str, list[int]] = {}
    for a in attempts:
        if a.delivered:
            by_channel.setdefault(a.channel, []).append(a.alert_id)
    return "; ".join(
        f"{id_list(ids)} to {channels[c].describe() if c in channels else c}" for c, ids in sorted(by_channel.items())
    )


def summary(pending: list[dict], channels: dict, attempts: list[Attempt]) -> str:
    """One line on the state of the outbox: the tick's skip reason in the UI. Says what was
    delivered where, and which alerts wait and why."""
    delivered = sum(a.delivered for a in attempts)
    done = f"{delivered} delivered this tick ({delivered_where(attempts, channels)}); " if delivered else ""
    if not pending:
        return f"{done}no undelivered nbp.fairness_breach alert."
    listed = []
    for alert in pending[:MAX_LISTED]:
        why = (
            "; ".join(
                f"{d['channel']}: {d['attempts']} attempt(s), last error {d['last_error'] or 'none yet'}, next {d['next_attempt_at']}"
                for d in alert["deliveries"]
                if d["channel"] in channels
            )
            or "no configured channel"
        )
        listed.append(
            f"#{alert['alert_id']} {alert['week_start']} {alert['product_id']} by {alert['dimension']} ({why})"
        )
    more = f" and {len(pending) - MAX_LISTED} more" if len(pending) > MAX_LISTED else ""
    where = f"in {outbox.ALERTS}"
    if not channels:
        return (
            f"No alert channel is configured (set one of {CHANNEL_SWITCHES}): {len(pending)} "
            f"nbp.fairness_breach alert(s) wait undelivered {where}: {'; '.join(listed)}{more}."
        )
    return f"{done}{len(pending)} nbp.fairness_breach alert(s) undelivered {where}: {'; '.join(listed)}{more}."


def _observation(attempt: Attempt) -> dg.AssetObservation:
    outcome = "delivered" if attempt.delivered else "delivery failed"
    metadata = {
        "alert_id": attempt.alert_id,
        "channel": attempt.channel,
        "outcome": outcome,
        "attempt": attempt.attempts,
    }
    if not attempt.delivered:
        metadata |= {"error": attempt.error or "", "next_attempt_at": str(attempt.next_attempt_at)}
    return dg.AssetObservation(
        asset_key=FAIRNESS_ASSET,
        partition=attempt.week_start.isoformat(),
        metadata=metadata,
        description=f"nbp.fairness_breach alert #{attempt.alert_id} {outcome} via {attempt.channel}",
    )


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Delivers nbp.fairness_breach alerts from the compliance outbox (PostgreSQL "
    "compliance.fairness_alerts) to the local Maildir, e-mail, webhook, Slack and Teams, retrying failed deliveries "
    "with back-off; each tick's message lists the alerts not yet delivered.",
)
def nbp_fairness_alert_sensor(
    context: dg.SensorEvaluationContext, postgres: PostgresResource, fairness_alerts: FairnessAlertsResource
) -> dg.SensorResult:
    url = postgres.conninfo()
    channels = fairness_alerts.channels()
    attempts = deliver_due(
        url,
        channels,
        retry_base_seconds=fairness_alerts.retry_base_seconds,
        retry_max_seconds=fairness_alerts.retry_max_seconds,
    )
    with outbox.connect(url) as conn:
        events = outbox.events_after(conn, int(context.cursor or 0), limit=200)
        pending = outbox.undelivered(conn)
    for event in events:
        log = (
            context.log.warning
            if event["event"] in ("opened", "delivery_failed", "ops_delivery_failed")
            else context.log.info
        )
        log(describe_event(event))
    text = summary(pending, channels, attempts)
    (context.log.warning if pending else context.log.info)(text)
    return dg.SensorResult(
        skip_reason=text,
        cursor=str(events[-1]["event_id"]) if events else context.cursor,
        asset_events=[_observation(a) for a in attempts],
    )


def fairness_alert_definitions() -> dg.Definitions:
    """The alert sensor and its channels (the outbox lives in the `postgres` resource's database)."""
    return dg.Definitions(
        sensors=[nbp_fairness_alert_sensor],
        resources={RESOURCE_KEY: FairnessAlertsResource.from_env()},
    )
