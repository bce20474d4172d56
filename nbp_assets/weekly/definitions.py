"""The weekly ranking's definitions: its assets, and the weekly job and schedule that run the
whole week (every asset of group next_best_product, whichever domain declares it)."""

from __future__ import annotations

import dagster as dg

from nbp_assets.core.partitions import TIMEZONE
from nbp_assets.ops.sensors import FRESHNESS_CHECK
from nbp_assets.weekly.assets import build_engine_assets
from nbp_assets.weekly.io import GROUP
from nbp_assets.weekly.weights import Weights
from nbp_assets.weekly.weights_asset import build_ranking_weights

WEEKLY_JOB = "nbp_weekly_job"
WEEKLY_SCHEDULE = "nbp_weekly_schedule"
# Monday 06:00 London: upstream snapshots of the closed week have landed overnight.
WEEKLY_CRON_HOUR = 6


def definitions(weights: Weights) -> dg.Definitions:
    """MOD-107's weekly assets (the weights, customers to nbp_ranked), the job and its schedule."""
    assets = [build_ranking_weights(), *build_engine_assets(weights)]
    weekly_job = dg.define_asset_job(
        WEEKLY_JOB,
        # The whole group, the publish, fairness and monitoring assets of the week included, and
        # ranking_weights observed first in every run: each week's scores record the weights'
        # digest they were computed with, so a later change shows them stale. The freshness
        # check on nbp_current runs on its own sensor, after the deadline, not in the run.
        selection=dg.AssetSelection.groups(GROUP, include_sources=True) - dg.AssetSelection.checks(FRESHNESS_CHECK),
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
    return dg.Definitions(assets=assets, jobs=[weekly_job], schedules=[weekly_schedule])
