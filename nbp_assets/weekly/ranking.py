"""Score eligible products from their signals and keep each customer's top 3.

score = min(1, sum of weight x signal over the lifting signals)
        x (1 - w_cooling_off x cooling_off) x (1 - w_lifecycle x lifecycle)

Lifting weights of a class sum to at most 1 and every signal is in [0, 1], so the score is
in [0, 1] by construction; penalties scale it down instead of subtracting, so a penalised
product keeps its order against other penalised products. primary_signal is the lifting
signal with the largest weighted contribution, the first in POSITIVE_SIGNALS order on a
tie ("none" when nothing lifts the product). Ties in score are broken by product_id
ascending, so identical inputs give identical output.

Both steps are SQL run in the warehouse. The contributions are summed left to right in
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
from nbp_assets.core.sqltext import SCALE_6DP, clip01, dbl, lit, round6, timestamp
from nbp_assets.weekly.weights import Weights

SCORE_DECIMALS = 6


def weights_relation(weights: Weights) -> str:
    """The weights matrix as an inline VALUES relation: the exact doubles model_version names."""
    rows = ",\n        ".join(
        "(" + ", ".join([lit(product_class), *(dbl(weights.matrix.at[product_class, s]) for s in ALL_SIGNALS)]) + ")"
        for product_class in weights.matrix.index
    )
    names = ", ".join(["product_class", *(f"w_{s}" for s in ALL_SIGNALS)])
    return f"(SELECT * FROM (VALUES\n        {rows}\n    ) AS w({names}))"


def scores_sql(signals: str, products: str, weights: Weights) -> str:
    """party_id, product_id, score, primary_signal and the explanation of the score: every
    lifting signal's contribution and every penalty's factor, the exact doubles the score is
    computed from (score = round6(min(1, contributions summed left to right) x factors))."""
    contributions = ",\n        ".join(f"w.w_{s} * s.{s} AS c_{s}" for s in POSITIVE_SIGNALS)
    factors = ",\n        ".join(f"(1.0e0 - w.w_{s} * s.{s}) AS f_{s}" for s in PENALTY_SIGNALS)
    total = f"c_{POSITIVE_SIGNALS[0]}"
    for s in POSITIVE_SIGNALS[1:]:
        total = f"({total} + c_{s})"  # left to right: floating-point addition is not associative
    penalty = " * ".join(f"f_{s}" for s in PENALTY_SIGNALS)
    largest = "greatest(" + ", ".join(f"c_{s}" for s in POSITIVE_SIGNALS) + ")"
    first_largest = " ".join(f"WHEN c_{s} = {largest} THEN {lit(s)}" for s in POSITIVE_SIGNALS)
    explained = ",\n    ".join(
        [
            *(f"c_{s} AS {contribution(s)}" for s in POSITIVE_SIGNALS),
            *(f"f_{s} AS {factor(s)}" for s in PENALTY_SIGNALS),
        ]
    )
    return f"""WITH contributions AS (
    SELECT
        s.party_id,
        s.product_id,
        {contributions},
        {factors}
    FROM {signals} s
    JOIN {products} p ON p.product_id = s.product_id
    JOIN {weights_relation(weights)} w ON w.product_class = p.product_class
)
SELECT
    party_id,
    product_id,
    {round6(clip01(f"least({total}, 1.0e0) * {penalty}"))} AS score,
    CASE WHEN {largest} > 0.0e0 THEN CASE {first_largest} END ELSE {lit(NO_SIGNAL)} END AS primary_signal,
    {explained}
FROM contributions"""


def top_n_sql(
    scores: str,
    customers: str,
    model_version: str,
    evaluated_at: datetime,
    top_n: int = TOP_N,
    *,
    products: str | None = None,
    dialect: str = "duckdb",
) -> str:
    """The top_n products per customer in the seed's next_best_product shape: by score
    descending, ties by product_id ascending. `products` (the week's register; by default the
    products of `scores`) numbers the products for DuckDB's ranking; Snowflake ranks with a
    window."""
    if dialect == "snowflake":
        return _top_n_window(scores, customers, model_version, evaluated_at, top_n)
    return _top_n_keyed(scores, customers, model_version, evaluated_at, top_n, products)


def _published(ranked: str, customers: str, model_version: str, evaluated_at: datetime, top_n: int) -> str:
    return f"""SELECT
    r.party_id,
    c.jurisdiction,
    CAST(r.rank AS INTEGER) AS rank,
    r.product_id,
    r.score,
    r.primary_signal,
    {lit(model_version)} AS model_version,
    {timestamp(evaluated_at)} AS evaluated_at
FROM {ranked} r
JOIN {customers} c ON c.party_id = r.party_id
WHERE r.rank <= {int(top_n)}"""


def _top_n_window(scores: str, customers: str, model_version: str, evaluated_at: datetime, top_n: int) -> str:
    return f"""WITH ranked AS (
    SELECT
        s.party_id,
        s.product_id,
        s.score,
        s.primary_signal,
        row_number() OVER (PARTITION BY s.party_id ORDER BY s.score DESC, s.product_id ASC) AS rank
    FROM {scores} s
)
{_published("ranked", customers, model_version, evaluated_at, top_n)}"""


# DuckDB's window sorts every candidate of the week on one thread (3.7 CPU s at 1M
# customers, most of the ranking step). Instead each candidate becomes one BIGINT that orders
# like (score DESC, product_id ASC) and carries its primary_signal, and a hash aggregate
# keeps each customer's top_n keys (max(key, n), parallel: 0.9 CPU s). The key, high bits
# first: the score in millionths (scores are 6 dp in [0, 1]: at most 2^20), the product's
# number in the register counted down (PRODUCT_BITS), the primary_signal's position.
_PRODUCT_BITS, _SIGNAL_BITS = 20, 4
_PRIMARY = (*POSITIVE_SIGNALS, NO_SIGNAL)
assert len(_PRIMARY) <= 2**_SIGNAL_BITS


def _top_n_keyed(
    scores: str, customers: str, model_version: str, evaluated_at: datetime, top_n: int, products: str | None
) -> str:
    register = products if products is not None else scores
    last = 2**_PRODUCT_BITS - 1
    encode = " ".join(f"WHEN {lit(s)} THEN {i}" for i, s in enumerate(_PRIMARY))
    decode = " ".join(f"WHEN {i} THEN {lit(s)}" for i, s in enumerate(_PRIMARY))
    signal_of = (
        f"CASE s.primary_signal {encode} ELSE error('primary_signal ' || s.primary_signal || ' is not a signal') END"
    )
    return f"""WITH products AS (
    SELECT product_id, {last} - (row_number() OVER (ORDER BY product_id) - 1) AS countdown
    FROM (SELECT DISTINCT product_id FROM {register} p) p
),
keyed AS (
    SELECT
        s.party_id,
        (CAST(round(s.score * {SCALE_6DP}) AS BIGINT) << {_PRODUCT_BITS + _SIGNAL_BITS})
            | (p.countdown << {_SIGNAL_BITS})
            | {signal_of} AS k
    FROM {scores} s
    JOIN products p ON p.product_id = s.product_id
),
top AS (
    SELECT party_id, max(k, {int(top_n)}) AS ks FROM keyed GROUP BY party_id
),
ranked AS (
    SELECT
        t.party_id,
        p.product_id,
        -- round6 made every score an integer count of millionths divided by 1e6: the same double
        (t.k >> {_PRODUCT_BITS + _SIGNAL_BITS}) / {SCALE_6DP} AS score,
        CASE t.k & {2**_SIGNAL_BITS - 1} {decode} END AS primary_signal,
        t.rank
    FROM (SELECT party_id, unnest(ks) AS k, unnest(generate_series(1, len(ks))) AS rank FROM top) t
    JOIN products p ON p.countdown = (t.k >> {_SIGNAL_BITS}) & {last}
)
{_published("ranked", customers, model_version, evaluated_at, top_n)}"""
