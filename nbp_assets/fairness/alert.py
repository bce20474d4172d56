"""What an nbp.fairness_breach alert carries: one flat JSON payload per breaching product
and dimension, stored in the compliance outbox and sent as-is to every channel."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nbp_assets.alerts.outbox import ALERT_TYPE
from nbp_assets.fairness.maths import attributable_to

POLICIES = ["CON-001", "CON-006"]
ACTION = "Model review by compliance (MOD-107 fairness monitoring)."


def _num(value: Any, digits: int = 4) -> float | None:
    """A plain float for JSON, None for missing (None, NaN, pandas NA)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else round(number, digits)


def alert_payload(
    gap: Mapping,
    week: str,
    model_version: str,
    threshold_pp: float,
    run_id: str,
    weeks_breached: int,
    weeks_reported: int,
    report_html: str,
    product_name: str | None = None,
) -> dict:
    """The alert for one breaching row of fairness_gaps, in plain JSON types."""
    eligibility_pp, ranking_pp = _num(gap.get("eligibility_pp")), _num(gap.get("ranking_pp"))
    return {
        "type": ALERT_TYPE,
        "week": week,
        "product_id": str(gap["product_id"]),
        "product_name": product_name,
        "dimension": str(gap["dimension"]),
        "model_version": model_version,
        "highest_group": str(gap["highest_group"]),
        "highest_rate": _num(gap["highest_rate"], 6),
        "highest_customers": int(gap["highest_customers"]),
        "lowest_group": str(gap["lowest_group"]),
        "lowest_rate": _num(gap["lowest_rate"], 6),
        "lowest_customers": int(gap["lowest_customers"]),
        "gap_pp": _num(gap["gap_pp"]),
        "gap_ci_low_pp": _num(gap.get("gap_ci_low_pp")),
        "gap_ci_high_pp": _num(gap.get("gap_ci_high_pp")),
        "clear_breach": bool(gap["clear_breach"]) if gap.get("clear_breach") is not None else None,
        "threshold_pp": float(threshold_pp),
        "highest_eligible_rate": _num(gap.get("highest_eligible_rate"), 6),
        "lowest_eligible_rate": _num(gap.get("lowest_eligible_rate"), 6),
        "highest_eligible_share": _num(gap.get("highest_eligible_share"), 6),
        "lowest_eligible_share": _num(gap.get("lowest_eligible_share"), 6),
        "eligibility_pp": eligibility_pp,
        "ranking_pp": ranking_pp,
        "attributable_to": attributable_to(eligibility_pp, ranking_pp, threshold_pp),
        "weeks_breached": int(weeks_breached),
        "weeks_reported": int(weeks_reported),
        "policies": POLICIES,
        "action": ACTION,
        "evaluated_by_run": run_id,
        "report_html": report_html,
    }
