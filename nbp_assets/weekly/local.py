"""The warehouse model run on in-memory frames: an embedded DuckDB holds them for one call.

For tests and small what-if runs: the same SQL the weekly assets run in the warehouse,
with the signatures nbp-1.0's pandas functions had, so the two can be compared directly.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Iterator

import duckdb
import pandas as pd

from nbp_assets.weekly.eligibility import eligible_pairs_sql
from nbp_assets.weekly.ranking import scores_sql, top_n_sql
from nbp_assets.weekly.signals import (
    SignalRelations,
    SignalReport,
    WeekInputs,
    report_sql,
    signals_sql,
    suppressed_sql,
    withheld_sql,
)
from nbp_assets.weekly.suitability import rules_relation
from nbp_assets.weekly.vocabulary import ALL_SIGNALS
from nbp_assets.weekly.weights import Weights

_EMPTY_ROTE = pd.DataFrame({"party_id": pd.Series(dtype=object), "customer_rote": pd.Series(dtype="float64")})


@contextmanager
def _duckdb(**frames: pd.DataFrame) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    try:
        for name, frame in frames.items():
            con.register(name, frame)
        yield con
    finally:
        con.close()


def _relations(inputs: WeekInputs, weights: Weights | None) -> SignalRelations:
    return SignalRelations(
        candidates="candidates_in",
        customers="customers_in",
        products="products_in",
        holdings="holdings_in",
        churn="churn_in",
        behaviour="behaviour_in",
        rejections="rejections_in",
        evaluation_date=inputs.evaluation_date,
        rote=None if inputs.rote is None else "rote_in",
        suitability=None if weights is None else rules_relation(weights),
    )


def _week_tables(inputs: WeekInputs) -> dict[str, pd.DataFrame]:
    """The week's in-memory inputs, by the names `_relations` reads them under."""
    return {
        "candidates_in": inputs.candidates,
        "customers_in": inputs.customers,
        "products_in": inputs.products,
        "holdings_in": inputs.holdings,
        "churn_in": inputs.churn,
        "behaviour_in": inputs.behaviour,
        "rejections_in": inputs.rejections,
        "rote_in": _EMPTY_ROTE if inputs.rote is None else inputs.rote,
    }


def compute_signals(inputs: WeekInputs, weights: Weights | None = None) -> tuple[pd.DataFrame, SignalReport]:
    """One row per candidate pair with party_id, product_id, every signal column and
    financial_health; the suitability rule of `weights` applies (none without weights)."""
    relations = _relations(inputs, weights)
    with _duckdb(**_week_tables(inputs)) as con:
        signals = con.sql(signals_sql(relations) + "\nORDER BY party_id, product_id").df()
        counts = con.sql(report_sql(relations)).df().iloc[0]
        withheld = con.sql(suppressed_sql(relations)).df().iloc[0]
    suppressed = int(withheld["pairs_suppressed_unsuitable"])
    report = SignalReport(
        dropped_signals=relations.dropped_signals,
        parties_without_churn=int(counts["parties_without_churn"]),
        parties_without_behaviour=int(counts["parties_without_behaviour"]),
        parties_without_rote=0 if inputs.rote is None else int(counts["parties_without_rote"]),
        pairs_in_cooling_off=int((signals["cooling_off"] > 0).sum()),
        pairs_already_held=len(inputs.candidates) - len(signals) - suppressed,
        pairs_suppressed_unsuitable=suppressed,
        pairs_down_weighted_unsuitable=int((signals["suitability"] > 0).sum()),
        pairs_withheld_unknown_health=int(withheld["pairs_withheld_unknown_health"]),
        parties_unknown_health_withheld=int(withheld["parties_unknown_health_withheld"]),
    )
    return signals[["party_id", "product_id", *ALL_SIGNALS, "financial_health"]], report


def withheld_pairs(inputs: WeekInputs, weights: Weights) -> pd.DataFrame:
    """The week's why-not rows (nbp_work.withheld without week_start), ordered by pair."""
    relations = _relations(inputs, weights)
    with _duckdb(**_week_tables(inputs)) as con:
        return con.sql(withheld_sql(relations) + "\nORDER BY party_id, product_id").df()


def score_candidates(signals: pd.DataFrame, products: pd.DataFrame, weights: Weights) -> pd.DataFrame:
    """Add score and primary_signal to every candidate row of `signals`."""
    with _duckdb(signals_in=signals, products_in=products) as con:
        scored = con.sql(scores_sql("signals_in", "products_in", weights)).df()
    return signals.merge(scored, on=["party_id", "product_id"], how="left", validate="1:1")


def top_products(
    scored: pd.DataFrame, customers: pd.DataFrame, model_version: str, evaluated_at: datetime
) -> pd.DataFrame:
    """The top 3 products per customer in the seed's next_best_product shape."""
    with _duckdb(scores_in=scored, customers_in=customers) as con:
        ranked = con.sql(
            top_n_sql("scores_in", "customers_in", model_version, evaluated_at) + "\nORDER BY party_id, rank"
        ).df()
    ranked["rank"] = ranked["rank"].astype("int32")
    ranked["evaluated_at"] = ranked["evaluated_at"].astype("datetime64[ns]")
    return ranked


def rank_week(
    inputs: WeekInputs, weights: Weights, evaluated_at: datetime
) -> tuple[pd.DataFrame, pd.DataFrame, SignalReport]:
    """signals -> scores -> top 3 in one call; the assets run the same SQL step by step."""
    signals, report = compute_signals(inputs, weights)
    scored = score_candidates(signals, inputs.products, weights)
    ranked = top_products(scored, inputs.customers, weights.model_version, evaluated_at)
    return ranked, scored, report


def eligible_candidates(eligibility: pd.DataFrame, customers: pd.DataFrame, product_ids: pd.Series) -> pd.DataFrame:
    """(party_id, product_id) pairs the gate lets through (weekly/eligibility.py)."""
    products = pd.DataFrame({"product_id": pd.Series(product_ids, dtype=object)})
    with _duckdb(snapshot_in=eligibility, customers_in=customers, products_in=products) as con:
        pairs = con.sql(eligible_pairs_sql("snapshot_in", "customers_in", "products_in")).df()
    keep = eligibility.merge(pairs.drop_duplicates(), on=["party_id", "product_id"], how="inner")
    return keep[["party_id", "product_id"]].reset_index(drop=True)
