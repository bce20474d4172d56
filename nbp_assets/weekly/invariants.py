"""Business invariants of a week's ranking, as SQL returning the offending rows.

No row means the invariant holds. They back the blocking checks of nbp_ranked and run in
the warehouse on the week's rows before they are committed. `ranked` and `eligible` are
relations (table names or parenthesised subqueries) holding one week.
"""

from __future__ import annotations

from nbp_assets.contract.vocabulary import TOP_N
from nbp_assets.core.sqltext import lit


def outside_eligibility(ranked: str, eligible: str) -> str:
    """Recommendations of a product the party is not ELIGIBLE for (CON-006)."""
    return f"""SELECT r.party_id, r.rank, r.product_id FROM {ranked} r
WHERE NOT EXISTS (SELECT 1 FROM {eligible} e WHERE e.party_id = r.party_id AND e.product_id = r.product_id)"""


def outside_eligibility_count(ranked: str, eligible: str) -> str:
    """How many rows `outside_eligibility` returns, computed as recommendations minus those
    found among the eligible pairs: an inner join lets the engine hash the smaller side
    (the top 3), where the anti-join hashes all eligible pairs."""
    return f"""SELECT (SELECT count(*) FROM {ranked} r)
     - (SELECT count(*) FROM {ranked} r JOIN {eligible} e ON e.party_id = r.party_id AND e.product_id = r.product_id)"""


def bad_ranks(ranked: str) -> str:
    """Parties whose ranks are not exactly 1..n with n <= TOP_N, or that repeat a product.

    For n <= 3 ranks in [1, n] are exactly {1..n} when their sum and sum of squares match
    1..n's: cheaper than counting distinct ranks per party."""
    return f"""SELECT party_id, 'ranks are not 1..n with n <= {TOP_N}' AS problem FROM {ranked}
GROUP BY party_id
HAVING count(*) > {TOP_N} OR min(rank) <> 1 OR max(rank) <> count(*)
    OR sum(rank) <> count(*) * (count(*) + 1) / 2
    OR sum(rank * rank) <> count(*) * (count(*) + 1) * (2 * count(*) + 1) / 6
UNION ALL
SELECT party_id, 'product ' || product_id || ' twice' AS problem FROM {ranked}
GROUP BY party_id, product_id
HAVING count(*) > 1"""


def bad_scores(ranked: str) -> str:
    """Scores outside [0, 1], not at 6 decimals, or rising with rank within a party.

    Each rank meets the one above it by a join, not a window: DuckDB sorts a window's rows on
    one thread, and the week's top 3 are tens of millions of rows at 10M customers."""
    return f"""SELECT r.party_id, r.rank, r.score, p.score AS previous_score
FROM {ranked} r
LEFT JOIN (SELECT party_id, rank, score FROM {ranked} x WHERE rank < {TOP_N}) p
    ON p.party_id = r.party_id AND p.rank = r.rank - 1
WHERE r.score < 0 OR r.score > 1 OR abs(r.score * 1000000.0e0 - round(r.score * 1000000.0e0)) > 1.0e-6
   OR r.score > p.score"""


def wrong_model_version(ranked: str, model_version: str) -> str:
    return f"SELECT party_id, rank, model_version FROM {ranked} WHERE model_version <> {lit(model_version)}"
