"""How each channel's message is shaped: an e-mail subject and text, Slack Block Kit
blocks and a Teams card, from an alert's payload (a flat JSON object, stored in the outbox
and posted as-is to the webhook). What a fairness alert carries is fairness/alert.py's.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from nbp_assets.alerts.outbox import ALERT_TYPE
from nbp_assets.fairness.alert import ACTION, POLICIES


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
