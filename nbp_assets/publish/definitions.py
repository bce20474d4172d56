"""The publish's definitions: nbp_current, the week the apps read."""

from __future__ import annotations

import dagster as dg

from nbp_assets.publish.assets import build_publish_asset
from nbp_assets.weekly.weights import Weights


def definitions(weights: Weights) -> dg.Definitions:
    return dg.Definitions(assets=[build_publish_asset(weights)])
