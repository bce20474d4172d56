"""Score eligible products from their signals and keep each customer's top 3.

score = min(1, sum of weight x signal over the lifting signals)
        x (1 - w_cooling_off x cooling_off) x (1 - w_lifecycle x lifecycle)

Lifting weights of a class sum to at most 1 and every signal is in [0, 1], so the score is
in [0, 1] by construction; penalties scale it down instead of subtracting, so a penalised
product keeps its order against other penalised products. primary_signal is the lifting
signal with the largest weighted contribution ("none" when nothing lifts the product).
Ties in score are broken by product_id ascending, so identical inputs give identical output.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from nbp_assets.model.signals import SignalReport, WeekInputs, compute_signals
from nbp_assets.model.weights import PENALTY_SIGNALS, POSITIVE_SIGNALS, Weights

TOP_N = 3
NO_SIGNAL = "none"
SCORE_DECIMALS = 6


def score_candidates(signals: pd.DataFrame, products: pd.DataFrame, weights: Weights) -> pd.DataFrame:
    """Add score and primary_signal to every candidate row of `signals`."""
    product_class = products.set_index("product_id")["product_class"]
    class_of_row = product_class.reindex(pd.Index(pd.unique(signals["product_id"])))
    if class_of_row.isna().any():
        raise ValueError(f"products without a product class: {list(class_of_row[class_of_row.isna()].index[:5])}")
    unknown = sorted(set(class_of_row) - set(weights.matrix.index))
    if unknown:
        raise ValueError(f"no weights configured for product class(es) {unknown}")

    # One weight row per product, then gather per candidate via the product's position.
    product_ids = pd.Index(class_of_row.index)
    w = weights.matrix.loc[class_of_row.to_numpy()]
    pos = product_ids.get_indexer(signals["product_id"])

    lift_w = w[list(POSITIVE_SIGNALS)].to_numpy("float64")[pos]
    lift_s = signals[list(POSITIVE_SIGNALS)].to_numpy("float64")
    contributions = lift_w * lift_s
    base = np.minimum(contributions.sum(axis=1), 1.0)
    penalty = np.ones(len(signals))
    for name in PENALTY_SIGNALS:
        penalty *= 1.0 - w[name].to_numpy("float64")[pos] * signals[name].to_numpy("float64")
    score = np.round(np.clip(base * penalty, 0.0, 1.0), SCORE_DECIMALS)

    best = contributions.argmax(axis=1)
    names = np.array(POSITIVE_SIGNALS + (NO_SIGNAL,), dtype=object)
    best = np.where(contributions.max(axis=1) > 0.0, best, len(POSITIVE_SIGNALS))

    out = signals.copy()
    out["score"] = score
    out["primary_signal"] = names[best]
    return out


def top_products(
    scored: pd.DataFrame,
    customers: pd.DataFrame,
    model_version: str,
    evaluated_at: datetime,
    top_n: int = TOP_N,
) -> pd.DataFrame:
    """The top_n products per customer in the seed's next_best_product shape.

    Works on a dense customers x products score matrix: a stable sort along each row of
    columns ordered by product_id breaks score ties by product_id without a global sort.
    """
    columns = ["party_id", "jurisdiction", "rank", "product_id", "score", "primary_signal", "model_version", "evaluated_at"]
    if scored.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _OUTPUT_DTYPES.items()})[columns]
    # sort=True makes the row-major output come out ordered by party_id, rank.
    party_codes, parties = pd.factorize(scored["party_id"], sort=True)
    product_ids = pd.Index(np.sort(pd.unique(scored["product_id"])))
    product_codes = product_ids.get_indexer(scored["product_id"])

    matrix = np.full((len(parties), len(product_ids)), -1.0)  # -1: not a candidate
    matrix[party_codes, product_codes] = scored["score"].to_numpy("float64")
    row_of = np.full((len(parties), len(product_ids)), -1, dtype=np.int64)
    row_of[party_codes, product_codes] = np.arange(len(scored))

    k = min(top_n, len(product_ids))
    order = np.argsort(-matrix, axis=1, kind="stable")[:, :k]
    chosen_rows = np.take_along_axis(row_of, order, axis=1)
    rank = np.broadcast_to(np.arange(1, k + 1), chosen_rows.shape)
    present = chosen_rows >= 0

    picked = scored.iloc[chosen_rows[present]]
    jurisdiction = customers.set_index("party_id")["jurisdiction"]
    out = pd.DataFrame(
        {
            "party_id": picked["party_id"].to_numpy(),
            "jurisdiction": jurisdiction.reindex(picked["party_id"]).to_numpy(),
            "rank": rank[present].astype("int32"),
            "product_id": picked["product_id"].to_numpy(),
            "score": picked["score"].to_numpy("float64"),
            "primary_signal": picked["primary_signal"].to_numpy(),
            "model_version": model_version,
            "evaluated_at": pd.Timestamp(evaluated_at),
        }
    )
    return out[columns]


_OUTPUT_DTYPES = {
    "party_id": object,
    "jurisdiction": object,
    "rank": "int32",
    "product_id": object,
    "score": "float64",
    "primary_signal": object,
    "model_version": object,
    "evaluated_at": "datetime64[ns]",
}


def rank_week(
    inputs: WeekInputs, weights: Weights, evaluated_at: datetime
) -> tuple[pd.DataFrame, pd.DataFrame, SignalReport]:
    """signals -> scores -> top 3 in one call; the assets run the same steps one by one."""
    signals, report = compute_signals(inputs)
    scored = score_candidates(signals, inputs.products, weights)
    ranked = top_products(scored, inputs.customers, weights.model_version, evaluated_at)
    return ranked, scored, report
