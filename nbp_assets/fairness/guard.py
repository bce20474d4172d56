"""NBP_FAIRNESS_BLOCKS_PUBLISH: whether nbp_current may publish a week, given its fairness report."""

from __future__ import annotations

from nbp_assets.core.partitions import Week
from nbp_assets.core.sql import render
from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.fairness.contract import REPORT_TABLE


def publish_blocked_reason(warehouse: WarehouseResource, week: Week, model_version: str) -> str | None:
    """Why this week's ranking must not reach the apps, or None. Blocked when the week has
    no fairness report for this model_version yet, or when the report has a breach."""
    missing = (
        f"nbp_current not published: week {week.key} has no fairness report for model_version "
        f"{model_version}, and NBP_FAIRNESS_BLOCKS_PUBLISH=true requires one. Materialize fairness_report first."
    )
    if not warehouse.table_exists(REPORT_TABLE):
        return missing
    found = warehouse.query(
        render("fairness", "publish_gate", report=REPORT_TABLE, week_start=week.start, model_version=model_version).text
    )
    if found.empty:
        return missing
    breaches = found[found["breach"] == 1]
    if breaches.empty:
        return None
    listed = ", ".join(f"{r.product_id} by {r.dimension} ({r.gap_pp:.1f} pp)" for r in breaches.itertuples())
    return (
        f"nbp_current not published: week {week.key} has {len(breaches)} nbp.fairness_breach(es): {listed}. "
        "NBP_FAIRNESS_BLOCKS_PUBLISH=true keeps the previous week live until the breach is reviewed "
        "(see compliance.fairness_alerts and docs/fairness.md)."
    )
