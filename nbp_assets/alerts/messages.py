"""What an nbp.fairness_breach alert says, and how each channel's message is shaped.

One payload (a flat JSON object, stored in the outbox and posted as-is to the webhook),
rendered as an e-mail subject and text, Slack Block Kit blocks, and a Teams card.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

from nbp_assets.alerts.outbox import ALERT_TYPE

POLICIES = ["CON-001", "CON-006"]
ACTION = "Model review by compliance (MOD-107 fairness monitoring)."


def _num(value: Any, digits: int = 4) -> float | None:
    """A plain float for JSON, None for missing (None, NaN, pandas NA)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else round(number, digits)


def attributable_to(eligibility_pp: float | None, ranking_pp: float | None, threshold_pp: float) -> str | None:
    """Which part of the gap would breach on its own: the ranking (a model review), the
    eligibility matrix (a CON-006 / MOD-105 review), both, or only the two combined."""
    if eligibility_pp is None or ranking_pp is None:
        return None
    ranking, eligibility = ranking_pp > threshold_pp, eligibility_pp > threshold_pp
    if ranking and eligibility:
        return "ranking and eligibility"
    return "ranking" if ranking else "eligibility" if eligibility else "ranking and eligibility combined"


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


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def is_fairness(alert: Mapping) -> bool:
    return (alert.get("type") or ALERT_TYPE) == ALERT_TYPE


def subject(alert: Mapping) -> str:
    if not is_fairness(alert):  # an operations alert carries its own one-line summary
        return f"[{alert['type']}] {alert['summary']}"
    return (
        f"[{ALERT_TYPE}] week {alert['week']}: {alert['product_id']} by {alert['dimension']}, "
        f"gap {alert['gap_pp']:.1f} pp (model {alert['model_version']})"
    )


def facts(alert: Mapping) -> list[tuple[str, str]]:
    """The alert as label/value lines, shared by every channel."""
    if not is_fairness(alert):
        head = [("Alert", f"#{alert['alert_id']}")] if alert.get("alert_id") is not None else []
        return head + [(str(label), str(value)) for label, value in alert["facts"]]
    lines = [
        ("Week", str(alert["week"])),
        (
            "Product",
            f"{alert['product_id']} {alert['product_name']}" if alert.get("product_name") else str(alert["product_id"]),
        ),
        ("Dimension", str(alert["dimension"])),
        (
            "Highest rate",
            f"{alert['highest_group']}: {_pct(alert['highest_rate'])} of {alert['highest_customers']} customers",
        ),
        (
            "Lowest rate",
            f"{alert['lowest_group']}: {_pct(alert['lowest_rate'])} of {alert['lowest_customers']} customers",
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
                f"ranking {alert['ranking_pp']:.1f} pp, eligibility {alert['eligibility_pp']:.1f} pp: "
                f"attributable to {alert['attributable_to']}",
            ),
        ]
    if alert.get("alert_weeks_breached") is not None:
        lines.append(
            (
                "Weeks breached",
                f"{alert['alert_weeks_breached']} so far under this alert "
                f"(first {alert['week']}, latest {alert.get('alert_last_week')})",
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


def text(alert: Mapping) -> str:
    width = max(len(label) for label, _ in facts(alert))
    body = "\n".join(f"{label + ':':<{width + 1}} {value}" for label, value in facts(alert))
    return f"{subject(alert)}\n\n{body}\n"


def slack_blocks(alert: Mapping) -> list[dict]:
    lines = "\n".join(f"*{label}:* {value}" for label, value in facts(alert))
    return [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": (
                    f"{ALERT_TYPE}: {alert['product_id']} by {alert['dimension']}"
                    if is_fairness(alert)
                    else f"{alert['type']}: {alert['summary']}"
                )[:150],
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": lines[:3000]}},
    ]


def teams_payload(alert: Mapping, legacy: bool) -> dict:
    """A Teams message built with dagster-msteams' cards: a hero card for legacy Office 365
    connectors (*.webhook.office.com), an adaptive card for Workflows webhooks."""
    from dagster_msteams.adaptive_card import AdaptiveCard
    from dagster_msteams.card import Card

    if legacy:
        card = Card()
        card.add_attachment(
            "<br>".join(f"<b>{html.escape(label)}:</b> {html.escape(value)}" for label, value in facts(alert))
        )
        card.attachments[0]["content"]["title"] = subject(alert)
        return card.payload
    card = AdaptiveCard()
    card.add_attachment(f"**{subject(alert)}**")
    for label, value in facts(alert):
        card.add_attachment(f"**{label}:** {value}")
    return card.payload
