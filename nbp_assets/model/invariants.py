"""Business invariants of a week's ranking, as plain functions returning the offending rows.

An empty frame means the invariant holds. They back the asset checks of nbp_ranked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nbp_assets.model.ranking import TOP_N


def outside_eligibility(ranked: pd.DataFrame, eligible: pd.DataFrame) -> pd.DataFrame:
    """Recommendations of a product the party is not ELIGIBLE for (CON-006)."""
    key = pd.MultiIndex.from_frame(eligible[["party_id", "product_id"]])
    inside = pd.MultiIndex.from_frame(ranked[["party_id", "product_id"]]).isin(key)
    return ranked.loc[~inside]


def bad_ranks(ranked: pd.DataFrame) -> pd.DataFrame:
    """Rows of parties whose ranks are not exactly 1..n with n <= TOP_N, or repeat a product."""
    if ranked.empty:
        return ranked
    grp = ranked.groupby("party_id", sort=False)
    n = grp["rank"].transform("size").to_numpy()
    expected_sum = n * (n + 1) // 2
    rank_sum = grp["rank"].transform("sum").to_numpy()
    rank_max = grp["rank"].transform("max").to_numpy()
    distinct_products = grp["product_id"].transform("nunique").to_numpy()
    dup_rank = ranked.duplicated(["party_id", "rank"], keep=False).to_numpy()
    bad = (n > TOP_N) | (rank_max != n) | (rank_sum != expected_sum) | (distinct_products != n) | dup_rank
    return ranked.loc[bad]


def bad_scores(ranked: pd.DataFrame) -> pd.DataFrame:
    """Scores outside [0, 1], not at 6 decimals, or rising with rank within a party."""
    score = ranked["score"].to_numpy("float64")
    off = (score < 0) | (score > 1) | ~np.isclose(score, np.round(score, 6), rtol=0, atol=1e-12)
    ordered = ranked.sort_values(["party_id", "rank"], kind="stable")
    rising = ordered.groupby("party_id", sort=False)["score"].diff().to_numpy() > 0
    rising_rows = ordered.index[rising]
    return ranked.loc[off | ranked.index.isin(rising_rows)]


def wrong_model_version(ranked: pd.DataFrame, model_version: str) -> pd.DataFrame:
    return ranked.loc[ranked["model_version"] != model_version]
