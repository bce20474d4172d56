"""Score eligible products from their signals and keep each customer's top 3.

score = min(1, sum of weight x signal over the lifting signals)
        x (1 - w_cooling_off x cooling_off) x (1 - w_lifecycle x lifecycle)

Lifting weights of a class sum to at most 1 and every signal is in [0, 1], so the score is
in [0, 1] by construction; penalties scale it down instead of subtracting, so a penalised
product keeps its order against other penalised products. primary_signal is the lifting
signal with the largest weighted contribution, the first in POSITIVE_SIGNALS order on a
tie ("none" when nothing lifts the product). Ties in score are broken by product_id
ascending, so identical inputs give identical output.

Both steps are SQL run in the warehouse: weekly/sql/scores.sql and weekly/sql/top_n.<engine>.sql. The contributions are summed left to right in
POSITIVE_SIGNALS order and the score is rounded half to even: the same floating-point
operations, in the same order, as nbp-1.0's numpy code, so a model_version means the same
numbers whichever engine computed them.
"""

from __future__ import annotations

from datetime import datetime

from nbp_assets.contract.vocabulary import (
    ALL_SIGNALS,
    NO_SIGNAL,
    PENALTY_SIGNALS,
    POSITIVE_SIGNALS,
    TOP_N,
    contribution,
    factor,
)
from nbp_assets.core.sql import render
from nbp_assets.weekly.weights import Weights

SCORE_DECIMALS = 6

# DuckDB's top_n key (weekly/sql/top_n.duckdb.sql), high bits first: the score in millionths,
# the product's number in the register counted down (PRODUCT_BITS), the primary_signal's
# position in PRIMARY (SIGNAL_BITS).
PRODUCT_BITS, SIGNAL_BITS = 20, 4
PRIMARY = (*POSITIVE_SIGNALS, NO_SIGNAL)
assert len(PRIMARY) <= 2**SIGNAL_BITS


def weights_relation(weights: Weights) -> str:
    """The weights matrix as an inline VALUES relation: the exact doubles model_version names."""
    m = weights.matrix
    rows = [(c, [float(m.at[c, s]) for s in ALL_SIGNALS]) for c in m.index]
    return render("weekly", "weights_values", rows=rows, signals=ALL_SIGNALS).text


def scores_sql(signals: str, products: str, weights: Weights, model_version: str | None = None) -> str:
    """party_id, product_id, score, primary_signal and the explanation of the score: every
    lifting signal's contribution and every penalty's factor, the exact doubles the score is
    computed from (score = round6(min(1, contributions summed left to right) x factors));
    and `model_version` as a last column when given."""
    return render(
        "weekly",
        "scores",
        signals=signals,
        products=products,
        weights=weights_relation(weights),
        positive=POSITIVE_SIGNALS,
        penalties=PENALTY_SIGNALS,
        contribution=contribution,
        factor=factor,
        no_signal=NO_SIGNAL,
        model_version=model_version,
    ).text


def top_n_sql(
    scores: str,
    customers: str,
    model_version: str,
    evaluated_at: datetime,
    top_n: int = TOP_N,
    *,
    products: str | None = None,
    dialect: str = "duckdb",
    ordered: bool = False,
) -> str:
    """The top_n products per customer in the seed's next_best_product shape: by score
    descending, ties by product_id ascending (in key order when `ordered`). `products` (the
    week's register; by default the products of `scores`) numbers the products for DuckDB's
    ranking; Snowflake ranks with a window."""
    return render(
        "weekly",
        "top_n",
        engine=dialect,
        scores=scores,
        customers=customers,
        model_version=model_version,
        evaluated_at=evaluated_at,
        top_n=int(top_n),
        products=products if products is not None else scores,
        primary=PRIMARY,
        product_bits=PRODUCT_BITS,
        signal_bits=SIGNAL_BITS,
        ordered=ordered,
    ).text
