"""The nbp_assets code location, assembled from one Definitions object per domain.

Each domain module builds its own assets, checks, jobs, schedules and sensors; this file
only merges them and adds the resources chosen by deployment (NBP_DEPLOYMENT).
"""

import warnings

import dagster as dg

from nbp_assets.alerts.sensor import fairness_alert_definitions
from nbp_assets.core.partitions import TIMEZONE
from nbp_assets.fairness.asset import build_fairness_assets
from nbp_assets.governance import govern
from nbp_assets.monitoring.assets import build_monitoring_assets
from nbp_assets.offers.assets import next_best_offer_definitions
from nbp_assets.offers.kafka_assets import definitions_if_configured as kafka_offer_definitions
from nbp_assets.ops.sensors import FRESHNESS_CHECK, PUBLISHED_ASSET, ops_alert_definitions
from nbp_assets.resources import build_resources, deployment_weights
from nbp_assets.simulation.simulate import simulate_definitions
from nbp_assets.weekly.assets import build_engine_assets
from nbp_assets.weekly.weights import Weights
from nbp_assets.weekly.weights_asset import build_ranking_weights

WEEKLY_JOB = "nbp_weekly_job"
WEEKLY_SCHEDULE = "nbp_weekly_schedule"
# Monday 06:00 London: upstream snapshots of the closed week have landed overnight.
WEEKLY_CRON_HOUR = 6


def weekly_engine_definitions(weights: Weights) -> dg.Definitions:
    """MOD-107: the weekly next-best-product assets, their job and schedule."""
    engine = [
        build_ranking_weights(),
        *build_engine_assets(weights),
        *build_fairness_assets(weights),
        *build_monitoring_assets(),
    ]
    weekly_job = dg.define_asset_job(
        WEEKLY_JOB,
        # ranking_weights is observed first in every run: each week's scores record the
        # weights' digest they were computed with, so a later change shows them stale.
        # The freshness check on nbp_current runs on its own sensor, after the deadline, not in the run.
        selection=dg.AssetSelection.assets(*engine) - dg.AssetSelection.checks(FRESHNESS_CHECK),
        description=f"One bank week of MOD-107 end to end (model_version {weights.model_version}).",
        tags={"model_version": weights.model_version},
        # One process: the 1M-customer week fits in memory, and the DuckDB file takes one writer.
        executor_def=dg.in_process_executor,
    )
    weekly_schedule = dg.build_schedule_from_partitioned_job(
        weekly_job,
        name=WEEKLY_SCHEDULE,
        hour_of_day=WEEKLY_CRON_HOUR,
        description=f"Every Monday {WEEKLY_CRON_HOUR:02d}:00 {TIMEZONE}: materialize the week that just closed.",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return dg.Definitions(assets=engine, jobs=[weekly_job], schedules=[weekly_schedule])


def build_definitions(deployment: str | None = None) -> dg.Definitions:
    # production: the Snowflake weights configuration table, read when a run starts (no login here)
    weights = deployment_weights(deployment, deferred=True)
    weekly = weekly_engine_definitions(weights)
    published = next(a for a in weekly.assets if PUBLISHED_ASSET in a.keys)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # Definitions.map_asset_specs is a preview in 1.13
        return _governed(
            dg.Definitions.merge(
                weekly,
                next_best_offer_definitions(),
                *kafka_offer_definitions(),  # only with NBP_KAFKA_BOOTSTRAP_SERVERS
                fairness_alert_definitions(),
                ops_alert_definitions(published),  # failed runs and checks, a week not published by Monday 09:00
                simulate_definitions(),  # a candidate weights file ranked into the sandbox, compared with the live week
                dg.Definitions(resources=build_resources(deployment), executor=dg.in_process_executor),
            )
        )


def _governed(defs: dg.Definitions) -> dg.Definitions:
    """Every asset with its owners and tags, from one table (assets/governance.py)."""
    return defs.map_asset_specs(func=govern)


defs = build_definitions()
