"""The names the weekly tables use for the model's outputs: the signals (a column each in
nbp_work.signals, a contribution each in nbp_work.scores, one of them a row's
primary_signal), what stands in primary_signal when no signal lifted the score, and how
many products each customer is ranked. The model (model/) computes them; the contracts
(contract/assets.py) promise them to every reader, so they are declared here, below both.
"""

from __future__ import annotations

# Signals that lift a product; their weights per class must sum to at most 1, so a score
# built from [0, 1] signals stays in [0, 1] without clipping hiding anything.
POSITIVE_SIGNALS = (
    "relationship_gap",
    "churn_risk",
    "rote_uplift",
    "idle_cash",
    "regular_fx",
    "spend_affinity",
)
# Signals that push a product down: score is multiplied by (1 - weight * signal).
# `suitability` is the suitability rule's (model/suitability.py): 1.0 when the customer's
# financial health is below the product class's threshold; a weight of 1.0 suppresses the
# pair instead (it is never ranked), so its factor is only ever applied below 1.
PENALTY_SIGNALS = ("cooling_off", "lifecycle", "suitability")

# Products ranked per customer, and primary_signal when no signal lifted the score.
TOP_N = 3
NO_SIGNAL = "none"
