"""How each channel's message is shaped: an e-mail subject and text, Slack Block Kit
blocks and a Teams card, from an alert's payload (a flat JSON object, stored in the outbox
and posted as-is to the webhook). What a fairness alert carries and says is
fairness/alert.py's; an operations alert carries its own summary and facts.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from nbp_assets.alerts.outbox import ALERT_TYPE
from nbp_assets.fairness import alert as fairness_alert


def is_fairness(alert: Mapping) -> bool:
    return (alert.get("type") or ALERT_TYPE) == ALERT_TYPE


def subject(alert: Mapping) -> str:
    if not is_fairness(alert):  # an operations alert carries its own one-line summary
        return f"[{alert['type']}] {alert['summary']}"
    return fairness_alert.subject(alert)


def facts(alert: Mapping) -> list[tuple[str, str]]:
    """The alert as label/value lines, shared by every channel."""
    if not is_fairness(alert):
        head = [("Alert", f"#{alert['alert_id']}")] if alert.get("alert_id") is not None else []
        return head + [(str(label), str(value)) for label, value in alert["facts"]]
    return fairness_alert.facts(alert)


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
                    fairness_alert.headline(alert) if is_fairness(alert) else f"{alert['type']}: {alert['summary']}"
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
