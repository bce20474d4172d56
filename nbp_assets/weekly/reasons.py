"""The short reason a customer is shown for a recommendation, one per primary_signal.

Apps (MOD-077 insight cards, MOD-083 agent assist) show the phrase of the row's
primary_signal; docs/explanations.md publishes this table, and a test keeps the two equal.
Phrases speak to the customer and promise nothing the signal does not measure.
"""

from __future__ import annotations

from nbp_assets.weekly.vocabulary import NO_SIGNAL, POSITIVE_SIGNALS

REASONS: dict[str, str] = {
    "relationship_gap": "Customers like you often have this product",
    "churn_risk": "A product to get more from staying with us",
    "rote_uplift": "A product that could suit your relationship with us better",
    "idle_cash": "You have money that could earn more in savings",
    "regular_fx": "You often spend in other currencies",
    "spend_affinity": "It matches what you spend most on",
    NO_SIGNAL: "A product you are eligible for",
}

assert set(REASONS) == {*POSITIVE_SIGNALS, NO_SIGNAL}, "every primary_signal needs a reason phrase"


def reason(primary_signal: str) -> str:
    return REASONS[primary_signal]
