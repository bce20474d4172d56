"""Business invariants of a week's ranking, as SQL returning the offending rows.

No row means the invariant holds. They back the blocking checks of nbp_ranked and run in
the warehouse on the week's rows before they are committed. `ranked` and `eligible` are
relations (table names or parenthesised subqueries) holding one week. One SQL file per
check: weekly/sql/checks/<name>.sql.
"""

from __future__ import annotations

from nbp_assets.contract.vocabulary import TOP_N
from nbp_assets.core.sql import render


def _check(name: str, **params) -> str:
    return render("weekly", f"checks/{name}", **params).text


def outside_eligibility(ranked: str, eligible: str) -> str:
    """Recommendations of a product the party is not ELIGIBLE for (CON-006)."""
    return _check("outside_eligibility", ranked=ranked, eligible=eligible)


def outside_eligibility_count(ranked: str, eligible: str) -> str:
    """How many rows `outside_eligibility` returns (recommendations minus those found among
    the eligible pairs: the engine hashes the top 3, not all eligible pairs)."""
    return _check("outside_eligibility_count", ranked=ranked, eligible=eligible)


def bad_ranks(ranked: str) -> str:
    """Parties whose ranks are not exactly 1..n with n <= TOP_N, or that repeat a product."""
    return _check("bad_ranks", ranked=ranked, top_n=TOP_N)


def bad_scores(ranked: str) -> str:
    """Scores outside [0, 1], not at 6 decimals, or rising with rank within a party."""
    return _check("bad_scores", ranked=ranked, top_n=TOP_N)


def wrong_model_version(ranked: str, model_version: str) -> str:
    return _check("wrong_model_version", ranked=ranked, model_version=model_version)
