"""Operations are told too: a failed run, a failed blocking check, a week not published by
Monday 09:00 Europe/London reach the same channels as compliance's alerts.

- nbp_run_failure_alert_sensor (a run-failure sensor): records every failed run of this
  code location as an operations alert, naming the failed steps and, when that was the
  cause, the blocking checks; then delivers it at once.
- freshness_check on nbp_current (Dagster's freshness check on the weekly partitions:
  the latest week must be materialized by Monday 09:00 Europe/London; shown in the UI,
  evaluated by nbp_freshness_checks_sensor). Open-source Dagster has no sensor on check
  results, so nbp_ops_alert_sensor judges the same deadline every minute from
  nbp_current's materialized weeks: a week still missing after it is one alert. It also
  delivers pending operations alerts with back-off.
- The same sensor reads the check results of the monitoring assets (model_drift,
  offer_outcomes) since its last tick (its cursor: the last event storage id read): each
  failed WARN check is one operations alert per week and metric (dedupe key
  nbp.<asset>:<week>:<metric>), so a re-run of the week does not alert again.
The rules and the messages are in ops/alerts.py.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone

import dagster as dg

from nbp_assets.alerts.delivery import Attempt, deliver_due
from nbp_assets.alerts.resource import FairnessAlertsResource
from nbp_assets.alerts.sensor import delivered_where
from nbp_assets.core.partitions import FIRST_WEEK, TIMEZONE
from nbp_assets.core.postgres_resource import PostgresResource
from nbp_assets.ops import alerts as ops

RUN_FAILURE_SENSOR = "nbp_run_failure_alert_sensor"
OPS_SENSOR = "nbp_ops_alert_sensor"
PUBLISHED_ASSET = dg.AssetKey("nbp_current")
FRESHNESS_CHECK = dg.AssetCheckKey(PUBLISHED_ASSET, "freshness_check")  # the name Dagster gives it
FIRST_WEEK_DATE = datetime.fromisoformat(FIRST_WEEK).date()
# Monitoring assets whose failed warning checks tell operations (ops.WARNING_TYPES).
WARNED_ASSETS = tuple(ops.WARNING_TYPES)
CHECK_EVENTS_PER_TICK = 500


def failed_warnings(instance: dg.DagsterInstance, cursor: int | None) -> tuple[list[ops.WarningFailure], int | None]:
    """The failed WARN checks of the monitoring assets evaluated after `cursor` (an event
    storage id), one WarningFailure per metric, and the cursor past the events read."""
    # Dagster 1.13 filters check evaluations by asset key to nothing (the key is not stored
    # with them) and has no fetch_* method for them: every evaluation after the cursor is
    # read (a week has about twenty) and the monitoring assets' are kept here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        records = instance.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, after_cursor=cursor),
            limit=CHECK_EVENTS_PER_TICK,
            ascending=True,
        )
    found = []
    for record in records:
        cursor = record.storage_id
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        asset = evaluation.asset_key.to_user_string()
        if asset not in WARNED_ASSETS or evaluation.passed or evaluation.severity != dg.AssetCheckSeverity.WARN:
            continue
        week = evaluation.partition
        if week is None:  # Dagster 1.13 leaves it empty: the run's partition
            run = instance.get_run_by_id(record.event_log_entry.run_id)
            week = run.tags.get("dagster/partition") if run is not None else None
        listed = evaluation.metadata.get(ops.DRIFTED_METRICS)
        found += ops.warning_failures(
            asset,
            evaluation.check_name,
            week,
            evaluation.description,
            record.event_log_entry.run_id,
            None if listed is None else listed.value,
        )
    return found, cursor


def step_failures(context: dg.RunFailureSensorContext) -> list[ops.StepFailure]:
    failures = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        checks: tuple[str, ...] = ()
        if data.user_failure_data is not None and data.user_failure_data.description:
            cause = data.user_failure_data.description.strip()
            listed = data.user_failure_data.metadata.get("failed_checks")
            if listed is not None:
                checks = tuple(c.strip() for c in str(listed.value).split(",") if c.strip())
        else:
            error, chain = data.error, []
            while error is not None:
                chain.append(error)
                error = error.cause
            cause = chain[-1].message.strip() if chain else "unknown"
            # Dagster's own failure of a blocking check (an ERROR-severity check of the asset)
            refused = next((e for e in chain if e.cls_name == "DagsterAssetCheckFailedError"), None)
            if refused is not None:
                checks = ops.checks_named_in(refused.message)
        failures.append(ops.StepFailure(event.step_key or "?", cause, checks))
    return failures


def _deliver(postgres: PostgresResource, alerts: FairnessAlertsResource) -> tuple[list[Attempt], dict]:
    channels = alerts.channels()
    attempts = deliver_due(
        postgres.conninfo(),
        channels,
        kind="ops",
        retry_base_seconds=alerts.retry_base_seconds,
        retry_max_seconds=alerts.retry_max_seconds,
    )
    return attempts, channels


def ops_summary(recorded: list[str], attempts: list[Attempt], channels: dict, pending: list[dict]) -> str:
    """The tick's status: what was recorded, what was delivered where, what still waits."""
    parts = list(recorded)
    if any(a.delivered for a in attempts):
        parts.append(f"delivered {delivered_where(attempts, channels)}")
    if pending:
        waiting = "; ".join(f"#{p['alert_id']} {p['alert_type']}: {p['summary']}" for p in pending[:5])
        parts.append(
            f"{len(pending)} operations alert(s) undelivered"
            + ("" if channels else " (no alert channel is configured)")
            + f": {waiting}"
        )
    return ". ".join(parts) + "." if parts else "no operations alert pending."


@dg.run_failure_sensor(
    name=RUN_FAILURE_SENSOR,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Tells operations when a run of this code location fails (the weekly run, or a blocking "
    "check that stopped it): an operations alert in compliance.ops_alerts, delivered to the alert channels.",
)
def nbp_run_failure_alert_sensor(
    context: dg.RunFailureSensorContext, postgres: PostgresResource, fairness_alerts: FairnessAlertsResource
):
    run = context.dagster_run
    alert = ops.run_failure_alert(run.run_id, run.job_name, run.tags.get("dagster/partition"), step_failures(context))
    alert_id, new = ops.record(postgres.conninfo(), alert)
    attempts, channels = _deliver(postgres, fairness_alerts)
    context.log.warning(
        f"{alert['type']} #{alert_id}{'' if new else ' (already recorded)'}: {alert['summary']}"
        + (f"; delivered {delivered_where(attempts, channels)}" if any(a.delivered for a in attempts) else "")
    )


@dg.sensor(
    name=OPS_SENSOR,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Tells operations when the week that closed has not been published to nbp_current by Monday "
    "09:00 Europe/London, or when a warning check of model_drift or offer_outcomes failed (once per week and "
    "metric), and delivers pending operations alerts (failed runs and checks) with back-off.",
)
def nbp_ops_alert_sensor(
    context: dg.SensorEvaluationContext, postgres: PostgresResource, fairness_alerts: FairnessAlertsResource
) -> dg.SkipReason:
    url = postgres.conninfo()
    published = context.instance.get_materialized_partitions(PUBLISHED_ASSET)
    now = datetime.now(timezone.utc)
    recorded = []
    late = ops.late_week(now, published, FIRST_WEEK_DATE)
    if late is not None:
        alert = ops.week_late_alert(late, now, max(published) if published else None)
        alert_id, new = ops.record(url, alert)
        if new:
            recorded.append(f"recorded #{alert_id} {alert['type']}: {alert['summary']}")
            context.log.warning(recorded[-1])
    warned, cursor = failed_warnings(context.instance, int(context.cursor) if context.cursor else None)
    for failure in warned:
        alert = ops.warning_alert(failure)
        alert_id, new = ops.record(url, alert)  # once per week and metric: a re-run adds nothing
        if new:
            recorded.append(f"recorded #{alert_id} {alert['type']}: {alert['summary']}")
            context.log.warning(recorded[-1])
    # Moved on only once the alerts are recorded: a failure above retries the same checks next tick.
    if cursor is not None:
        context.update_cursor(str(cursor))
    attempts, channels = _deliver(postgres, fairness_alerts)
    text = ops_summary(recorded, attempts, channels, ops.undelivered(url))
    return dg.SkipReason(text)


def ops_alert_definitions(published_asset: dg.AssetsDefinition | None = None) -> dg.Definitions:
    """The run-failure sensor, the deadline sensor and the freshness check on nbp_current's weeks."""
    with_freshness: list = []
    sensors: list = [nbp_run_failure_alert_sensor, nbp_ops_alert_sensor]
    if published_asset is not None:
        # Dagster 1.13 calls these superseded by FreshnessPolicy, but its evaluator judges the
        # asset as a whole, not "was the latest weekly partition materialized by the deadline".
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.SupersessionWarning)
            with_freshness = list(
                dg.build_time_partition_freshness_checks(
                    assets=[published_asset], deadline_cron=ops.PUBLISH_DEADLINE_CRON, timezone=TIMEZONE
                )
            )
            sensors.append(
                dg.build_sensor_for_freshness_checks(
                    freshness_checks=with_freshness,
                    name="nbp_freshness_checks_sensor",
                    default_status=dg.DefaultSensorStatus.RUNNING,
                )
            )
    # The channels (resource fairness_alerts) come with the fairness alert sensor's definitions.
    return dg.Definitions(asset_checks=with_freshness, sensors=sensors)
