"""What an nbp.fairness_breach alert carries and says: one flat JSON payload per breaching
product and dimension, stored in the compliance outbox and sent as-is to every channel,
and its subject and label/value lines, which every channel (alerts/messages.py) lays out.
Also the week's alerts as a whole: one per stored breach (`alert_payloads`), recorded in
the outbox (`record_breaches`), and the state each stands in (`states_of_run`,
`states_in_outbox`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from nbp_assets.alerts import outbox, workflow
from nbp_assets.alerts.outbox import ALERT_TYPE
from nbp_assets.fairness.contract import group_text
from nbp_assets.fairness.maths import attributable_to

if TYPE_CHECKING:  # core.partitions imports Dagster, which the alerts CLI (alerts/messages.py) must not load
    from nbp_assets.core.partitions import Week

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
    suitability_pp = _num(gap.get("suitability_pp"))  # None for a week without nbp_work.withheld
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
        "highest_suitable_share": _num(gap.get("highest_suitable_share"), 6),
        "lowest_suitable_share": _num(gap.get("lowest_suitable_share"), 6),
        "suitability_pp": suitability_pp,
        "attributable_to": attributable_to(eligibility_pp, ranking_pp, threshold_pp, suitability_pp),
        "weeks_breached": int(weeks_breached),
        "weeks_reported": int(weeks_reported),
        "policies": POLICIES,
        "action": ACTION,
        "evaluated_by_run": run_id,
        "report_html": report_html,
    }


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def headline(alert: Mapping) -> str:
    return f"{ALERT_TYPE}: {alert['product_id']} by {alert['dimension']}"


def subject(alert: Mapping) -> str:
    return (
        f"[{ALERT_TYPE}] week {alert['week']}: {alert['product_id']} by {alert['dimension']}, "
        f"gap {alert['gap_pp']:.1f} pp (model {alert['model_version']})"
    )


def facts(alert: Mapping) -> list[tuple[str, str]]:
    """The alert as label/value lines, shared by every channel. A group of an intersection
    reads `jurisdiction=IE & age_band=25-34`."""
    high, low = (group_text(str(alert["dimension"]), str(alert[f"{side}_group"])) for side in ("highest", "lowest"))
    lines = [
        ("Week", str(alert["week"])),
        (
            "Product",
            f"{alert['product_id']} {alert['product_name']}" if alert.get("product_name") else str(alert["product_id"]),
        ),
        ("Dimension", str(alert["dimension"])),
        (
            "Highest rate",
            f"{high}: {_pct(alert['highest_rate'])} of {alert['highest_customers']} customers",
        ),
        (
            "Lowest rate",
            f"{low}: {_pct(alert['lowest_rate'])} of {alert['lowest_customers']} customers",
        ),
        ("Gap", f"{alert['gap_pp']:.1f} pp (threshold {alert['threshold_pp']:.0f} pp)"),
    ]
    if alert.get("gap_ci_low_pp") is not None:
        lines.append(
            (
                "Gap 95% interval",
                f"{alert['gap_ci_low_pp']:.1f} to {alert['gap_ci_high_pp']:.1f} pp: "
                + (
                    "clear of the threshold"
                    if alert.get("clear_breach")
                    else "reaches the threshold, the breach may be sampling noise"
                ),
            )
        )
    if alert.get("ranking_pp") is not None:
        lines += [
            (
                "Rate among eligible",
                f"{alert['highest_group']}: {_pct(alert['highest_eligible_rate'])}, "
                f"{alert['lowest_group']}: {_pct(alert['lowest_eligible_rate'])}",
            ),
            (
                "Share eligible",
                f"{alert['highest_group']}: {_pct(alert['highest_eligible_share'])}, "
                f"{alert['lowest_group']}: {_pct(alert['lowest_eligible_share'])}",
            ),
            (
                "Gap from",
                f"ranking {alert['ranking_pp']:.1f} pp, "
                + (f"suitability {alert['suitability_pp']:.1f} pp, " if alert.get("suitability_pp") is not None else "")
                + f"eligibility {alert['eligibility_pp']:.1f} pp: attributable to {alert['attributable_to']}",
            ),
        ]
    if alert.get("alert_weeks_breached") is not None:
        lines.append(
            (
                "Weeks breached",
                f"{alert['alert_weeks_breached']} so far under this alert "
                # a backfill may have added weeks before the one that opened the alert (payload's week)
                f"(first {alert.get('alert_first_week', alert['week'])}, latest {alert.get('alert_last_week')})",
            )
        )
    lines += [
        ("Recent weeks", f"breached {alert['weeks_breached']} of the last {alert['weeks_reported']} reported"),
        ("Model version", str(alert["model_version"])),
        ("Policies", ", ".join(alert.get("policies", POLICIES))),
        ("Action", str(alert.get("action", ACTION))),
    ]
    if alert.get("alert_id") is not None:
        lines.insert(0, ("Alert", f"#{alert['alert_id']} ({alert.get('status', 'open')})"))
    if alert.get("resolution"):
        lines.append(("Resolved", str(alert["resolution"])))
    if alert.get("report_html"):
        lines.append(("Report", str(alert["report_html"])))
    return lines


def alert_payloads(
    gaps: pd.DataFrame,
    breaches: pd.DataFrame,
    history: pd.DataFrame,
    week: Week,
    model_version: str,
    threshold: float,
    run_id: str,
    names: dict,
    report_html: str,
) -> list[dict]:
    """One alert per stored breach of the week (fairness.breaches), told with the week's gap
    details and how many of the recent weeks breached."""
    counts = history.set_index(["product_id", "dimension"])[["weeks_breached", "weeks_reported"]]
    breaching = gaps.merge(breaches[["product_id", "dimension"]], on=["product_id", "dimension"])
    return [
        alert_payload(
            row,
            week.key,
            model_version,
            threshold,
            run_id,
            *counts.loc[(row["product_id"], row["dimension"])],
            report_html,
            product_name=names.get(row["product_id"]),
        )
        for row in breaching.to_dict("records")
    ]


def record_breaches(
    url: str, week: Week, model_version: str, alerts: list[dict], gaps: pd.DataFrame, run_id: str
) -> outbox.RecordOutcome:
    """Record the week's evaluation in the compliance outbox: its alerts, and every gap (a
    gap that could not be measured, NaN in the frame, is None, as record_week declares)."""
    gaps_now = {
        (r["product_id"], r["dimension"]): None if pd.isna(r["gap_pp"]) else r["gap_pp"]
        for r in gaps.to_dict("records")
    }
    return outbox.record_week(url, week.start, model_version, alerts, gaps_now, run_id)


# What each breach's alert is, for the report's top table: (alert id, state, weeks it counts).
AlertStates = dict[tuple[str, str], tuple[int, str, int | str]]


def states_of_run(outcome: outbox.RecordOutcome) -> AlertStates:
    """The alerts as this run's evaluation left them: new, relapsed, already open, or a
    resolved alert that had already counted the week."""
    state = {i: "new" for i in outcome.opened} | {i: "already open" for i in outcome.still_open}
    state |= {new: f"new, relapse after #{old}" for new, old in outcome.relapsed.items()}
    return {
        key: (alert_id, state.get(alert_id, "resolved earlier"), outcome.weeks_breached.get(alert_id, ""))
        for key, alert_id in outcome.alert_ids.items()
    }


def states_in_outbox(url: str, week: Week) -> AlertStates:
    """The alerts that count the week as they now stand (a later run may have grown or
    resolved them); the newest alert of a product and dimension wins."""
    return {
        (a["product_id"], a["dimension"]): (a["alert_id"], a["status"], a["weeks_breached"])
        for a in workflow.alerts_of_week(url, week.start)
    }
