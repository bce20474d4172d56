"""The nbp_assets code location: each domain's Definitions, merged.

Each domain folder (weekly, publish, fairness, monitoring, offers, alerts, ops, simulation)
hands over its own assets, checks, jobs, schedules and sensors in its `definitions.py`; this
file only merges them, adds the resources chosen by deployment (NBP_DEPLOYMENT) and the
owners and tags of every asset (governance.py).
"""

import warnings

import dagster as dg

from nbp_assets import governance
from nbp_assets.alerts import definitions as alerts
from nbp_assets.fairness import definitions as fairness
from nbp_assets.monitoring import definitions as monitoring
from nbp_assets.offers import definitions as offers
from nbp_assets.ops import definitions as ops
from nbp_assets.publish import definitions as publish
from nbp_assets.resources import build_resources, deployment_weights
from nbp_assets.simulation import definitions as simulation
from nbp_assets.weekly import definitions as weekly
from nbp_assets.weekly.definitions import WEEKLY_JOB, WEEKLY_SCHEDULE

__all__ = ["WEEKLY_JOB", "WEEKLY_SCHEDULE", "build_definitions", "defs"]


def build_definitions(deployment: str | None = None) -> dg.Definitions:
    # production: the Snowflake weights configuration table, read when a run starts (no login here)
    weights = deployment_weights(deployment, deferred=True)
    published = publish.definitions(weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # Definitions.map_asset_specs is a preview in 1.13
        merged = dg.Definitions.merge(
            weekly.definitions(weights),
            published,
            fairness.definitions(weights),
            monitoring.definitions(),
            offers.definitions(),
            alerts.definitions(),
            ops.definitions(*published.assets),
            simulation.definitions(),
            dg.Definitions(resources=build_resources(deployment), executor=dg.in_process_executor),
        )
        return merged.map_asset_specs(func=governance.govern)


defs = build_definitions()
