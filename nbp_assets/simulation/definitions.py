"""Challenger simulation's definitions: the job that ranks a week with candidate weights."""

from __future__ import annotations

import dagster as dg

from nbp_assets.simulation.simulate import simulate_definitions


def definitions() -> dg.Definitions:
    return simulate_definitions()
