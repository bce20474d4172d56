"""Monitoring's definitions: offer_outcomes and model_drift, run with every week."""

from __future__ import annotations

import dagster as dg

from nbp_assets.monitoring.assets import build_monitoring_assets


def definitions() -> dg.Definitions:
    return dg.Definitions(assets=build_monitoring_assets())
