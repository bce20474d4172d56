"""The model's vocabulary: the names the weekly tables use for its outputs. The signals (a
column each in nbp_work.signals, a contribution or a factor each in nbp_work.scores, one of
them a row's primary_signal), what stands in primary_signal when no signal lifted the score,
and how many products each customer is ranked.

Adding a signal starts here: its name below, its SQL in sql/signals.sql, its weight per
class in default_weights.csv, its reason phrase in reasons.py (a lifting signal); the tables'
contracts (contract/assets.py) and declarations build their columns from these names. This module imports nothing, so the contracts may read it: in the
import layers (docs/architecture.md) it sits with them, below the rest of the model.
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
# `suitability` is the suitability rule's (suitability.py): 1.0 when the customer's
# financial health is below the product class's threshold; a weight of 1.0 suppresses the
# pair instead (it is never ranked), so its factor is only ever applied below 1.
PENALTY_SIGNALS = ("cooling_off", "lifecycle", "suitability")

# Products ranked per customer, and primary_signal when no signal lifted the score.
TOP_N = 3
NO_SIGNAL = "none"

ALL_SIGNALS = POSITIVE_SIGNALS + PENALTY_SIGNALS


def contribution(signal: str) -> str:
    """The scores column holding a lifting signal's weighted contribution (weight x signal)."""
    return f"{signal}_contribution"


def factor(signal: str) -> str:
    """The scores column holding a penalty's factor (1 - weight x signal)."""
    return f"{signal}_factor"


EXPLANATION_COLUMNS = tuple(contribution(s) for s in POSITIVE_SIGNALS) + tuple(factor(s) for s in PENALTY_SIGNALS)
