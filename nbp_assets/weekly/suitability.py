"""Product suitability (CON-006, Consumer Duty): products that add credit risk are kept away
from customers in financial difficulty.

MOD-040's financial health score (0-100, higher is healthier) is read as `financial_health`
= score / 100 at 6 dp. Per product class the weights configuration may hold a rule: the
class's `suitability_health_below` threshold and its `suitability` weight. A customer whose
financial_health is below the threshold gets the `suitability` penalty signal 1.0 on the
class's products, and then:
- weight 1.0 suppresses the pair: it leaves the candidates (like a product already held),
  so it is never scored, ranked or published, even when fewer than three products remain;
- a weight w below 1.0 down-weights it: score x (1 - w), like the other penalties.
A customer without a MOD-040 row is not known to be in difficulty: the rule does not fire.

The rule is part of model_version (model/weights.py); see docs/suitability.md for the
defaults and why.
"""

from __future__ import annotations

from nbp_assets.core.sql import render
from nbp_assets.weekly.weights import HEALTH_THRESHOLD, Weights

SUITABILITY = "suitability"
HEALTH_SCALE = 100.0  # MOD-040 scores 0-100; financial_health is in [0, 1] like the signals
SUPPRESS = 1.0  # a suitability weight of 1.0 means "never offer", not "score x 0"


def rules_relation(weights: Weights) -> str | None:
    """product_class, health_below, penalty for the classes with a rule; None without any
    (weekly/sql/suitability_rules.sql)."""
    m = weights.matrix
    ruled = [c for c in m.index if m.at[c, HEALTH_THRESHOLD] > 0.0 and m.at[c, SUITABILITY] > 0.0]
    if not ruled:
        return None
    rows = [(c, float(m.at[c, HEALTH_THRESHOLD]), float(m.at[c, SUITABILITY])) for c in ruled]
    return render("weekly", "suitability_rules", rows=rows).text


def suppressed_published(ranked: str, health: str, products: str, weights: Weights) -> str:
    """Published recommendations the suitability rule suppresses: the product's class has a
    suppressing rule and the party's MOD-040 health (read from the snapshot itself, not from
    the signals the rule produced) is below its threshold (weekly/sql/checks/suppressed_published.sql)."""
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
