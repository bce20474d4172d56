"""Fairness monitoring's definitions: fairness_report and its check (its alerts are delivered
by the alerts domain's sensor)."""

from __future__ import annotations

import dagster as dg

from nbp_assets.fairness.asset import build_fairness_assets
from nbp_assets.weekly.weights import Weights


def definitions(weights: Weights) -> dg.Definitions:
    return dg.Definitions(assets=build_fairness_assets(weights))
