"""Operations' definitions: failed runs and blocking checks, and a week not published by its
deadline (a freshness check on the published asset's weekly partitions)."""

from __future__ import annotations

import dagster as dg

from nbp_assets.ops.sensors import ops_alert_definitions


def definitions(published_asset: dg.AssetsDefinition) -> dg.Definitions:
    return ops_alert_definitions(published_asset)
