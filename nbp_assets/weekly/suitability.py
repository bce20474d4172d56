"""Product suitability (CON-006, Consumer Duty): products that add credit risk are kept away
from customers in financial difficulty.

MOD-040's financial health score (0-100, higher is healthier) is kept as `financial_health`
= score / 100 at 6 dp for the explanations. Per product class the weights configuration may
hold a rule: the class's `suitability_health_below` threshold, its `suitability` weight and
`suitability_when_unknown`. A customer whose score as delivered (unrounded) / 100 is below the
threshold, or whose health is unknown (no row in the week's MOD-040 snapshot, or NULL) where
the class's suitability_when_unknown is 1 (the default of a suppressing rule: fails closed),
gets the `suitability` penalty signal 1.0 on the class's products, and then:
- weight 1.0 suppresses the pair: it leaves the candidates (like a product already held),
  so it is never scored, ranked or published, even when fewer than three products remain;
- a weight w below 1.0 down-weights it: score x (1 - w), like the other penalties.
Every suppressed pair is recorded with its reason in nbp_work.withheld (the why-not record).

The rule is part of model_version (weekly/weights.py); see docs/suitability.md for the
defaults and why.
"""

from __future__ import annotations

from nbp_assets.core.sql import render
from nbp_assets.weekly.weights import HEALTH_THRESHOLD, WHEN_UNKNOWN, Weights

SUITABILITY = "suitability"
HEALTH_SCALE = 100.0  # MOD-040 scores 0-100; financial_health is in [0, 1] like the signals
SUPPRESS = 1.0  # a suitability weight of 1.0 means "never offer", not "score x 0"


def rules_relation(weights: Weights) -> str | None:
    """product_class, health_below, penalty, when_unknown for the classes with a rule; None
    without any (weekly/sql/suitability_rules.sql)."""
    m = weights.matrix
    ruled = [c for c in m.index if m.at[c, HEALTH_THRESHOLD] > 0.0 and m.at[c, SUITABILITY] > 0.0]
    if not ruled:
        return None
    rows = [
        (c, float(m.at[c, HEALTH_THRESHOLD]), float(m.at[c, SUITABILITY]), float(m.at[c, WHEN_UNKNOWN])) for c in ruled
    ]
    return render("weekly", "suitability_rules", rows=rows).text


def suppressed_published(ranked: str, health: str, products: str, weights: Weights) -> str:
    """Published recommendations the suitability rule suppresses: the product's class has a
    suppressing rule and the party's MOD-040 health (read from the snapshot itself, not from
    the signals the rule produced) is below its threshold, or unknown where the class fails
    closed (weekly/sql/checks/suppressed_published.sql)."""
    return render(
        "weekly",
        "checks/suppressed_published",
        ranked=ranked,
        health=health,
        products=products,
        rules=rules_relation(weights),
        health_scale=HEALTH_SCALE,
        suppress=SUPPRESS,
    ).text
