"""The alerts' definitions: the sensor that delivers fairness alerts, and the channels it uses."""

from __future__ import annotations

import dagster as dg

from nbp_assets.alerts.sensor import fairness_alert_definitions


def definitions() -> dg.Definitions:
    return fairness_alert_definitions()
