"""The pandas/numpy model of nbp-1.0 as it ran before the week moved into the warehouse.

Kept in the tests as the reference the SQL model must equal bit for bit (same inputs and
weights, same rows): a model_version keeps its meaning across the two implementations.
Not used by the engine.

Extended in the same spirit for the suitability rule (MOD-040 financial health, CON-006):
`financial_health` and the `suitability` penalty signal, and the pairs a rule suppresses
leaving the candidates. Without a rule (weights None, or a configuration without one) it is
nbp-1.0's model unchanged: the suitability signal is 0 and its factor 1.0 is exact.

Rule change of issue 22 (documented in docs/suitability.md, applied here explicitly): the
threshold is compared on the MOD-040 score as delivered (score / 100 unrounded, no longer the
6 dp financial_health), and a customer whose health is unknown (no MOD-040 row, or NULL) is
unsuitable where the class's `suitability_when_unknown` is 1 (the default of a suppressing
rule: fails closed). With suitability_when_unknown 0 on every class and no score within
half a millionth below a threshold, the rows are those of the rule before issue 22.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from nbp_assets.weekly.eligibility import ACTIVE, ELIGIBLE
from nbp_assets.weekly.ranking import SCORE_DECIMALS
from nbp_assets.weekly.signals import (
    COOLING_OFF_DAYS,
    IDLE_CASH_BUFFER_MONTHS,
    IDLE_CASH_FULL_MONTHS,
    LIFECYCLE_PENALTY,
    MIN_MONTHLY_SPEND,
    ROTE_UPLIFT_SCALE,
    SignalReport,
    WeekInputs,
)
from nbp_assets.weekly.suitability import HEALTH_SCALE, SUPPRESS
from nbp_assets.weekly.vocabulary import (
    ALL_SIGNALS,
    NO_SIGNAL,
    PENALTY_SIGNALS,
    POSITIVE_SIGNALS,
    TOP_N,
    contribution,
    factor,
)
from nbp_assets.weekly.weights import HEALTH_THRESHOLD, WHEN_UNKNOWN, Weights


def _party_lookup(parties: pd.Index, frame: pd.DataFrame) -> np.ndarray:
    """Row position in `frame` of each party (-1 when the party has no row)."""
    return pd.Index(frame["party_id"]).get_indexer(parties)


def _take(values: np.ndarray, pos: np.ndarray, fill: float) -> np.ndarray:
    out = np.where(pos >= 0, values[np.clip(pos, 0, None)], fill) if len(values) else np.full(len(pos), fill)
    return out.astype("float64")


def _pair_codes(party_pos: np.ndarray, product_pos: np.ndarray, n_products: int) -> np.ndarray:
    return party_pos.astype("int64") * n_products + product_pos.astype("int64")


def compute_signals(
    inputs: WeekInputs, weights: Weights | None = None, before_issue_22: bool = False
) -> tuple[pd.DataFrame, SignalReport]:
    """One row per candidate pair with party_id, product_id, every signal column and
    financial_health; the suitability rule of `weights` applies (none without weights)."""
    report = SignalReport()
    cand = inputs.candidates
    products = inputs.products.reset_index(drop=True)
    n_products = len(products)

    # Positions instead of string joins: one hash lookup per key column, then array takes.
    party_index = pd.Index(inputs.customers["party_id"])
    if not party_index.is_unique:
        raise ValueError("customers must hold one row per party_id")
    party_pos = party_index.get_indexer(cand["party_id"])
    product_pos = pd.Index(products["product_id"]).get_indexer(cand["product_id"])
    if (party_pos < 0).any() or (product_pos < 0).any():
        raise ValueError("every candidate must reference an active customer and a registered product")

    signals: dict[str, np.ndarray] = {}

    # relationship_gap: product penetration among same-segment active customers.
    segment_codes, segment_names = pd.factorize(inputs.customers["segment"], sort=True)
    hold_party = party_index.get_indexer(inputs.holdings["party_id"])
    hold_product = pd.Index(products["product_id"]).get_indexer(inputs.holdings["product_id"])
    keep = (hold_party >= 0) & (hold_product >= 0)
    held_codes = np.unique(_pair_codes(hold_party[keep], hold_product[keep], n_products))
    held_party, held_product = np.divmod(held_codes, n_products)
    holders = np.zeros((len(segment_names), n_products))
    np.add.at(holders, (segment_codes[held_party], held_product), 1.0)
    segment_size = np.bincount(segment_codes, minlength=len(segment_names)).astype("float64")
    penetration = holders / np.maximum(segment_size, 1.0)[:, None]
    cand_codes = _pair_codes(party_pos, product_pos, n_products)
    # A product the party already holds is not a *next* product: it leaves the candidates.
    not_held = ~np.isin(cand_codes, held_codes)
    report.pairs_already_held = int((~not_held).sum())
    cand, party_pos, product_pos, cand_codes = (
        cand.loc[not_held],
        party_pos[not_held],
        product_pos[not_held],
        cand_codes[not_held],
    )
    signals["relationship_gap"] = penetration[segment_codes[party_pos], product_pos]

    # churn_risk: only retention products are lifted by churn risk.
    churn_pos = _party_lookup(party_index, inputs.churn)
    churn = _take(inputs.churn["churn_probability"].to_numpy("float64"), churn_pos, 0.0)
    report.parties_without_churn = int((churn_pos < 0).sum())
    is_retention = products["is_retention"].to_numpy(bool)
    signals["churn_risk"] = np.where(is_retention[product_pos], churn[party_pos], 0.0)

    # rote_uplift: optional MOD-106 input; without it the signal is dropped (all zero).
    target_rote = products["target_rote"].to_numpy("float64")
    if inputs.rote is None:
        report.dropped_signals.append("rote_uplift")
        signals["rote_uplift"] = np.zeros(len(cand))
    else:
        rote_pos = _party_lookup(party_index, inputs.rote)
        report.parties_without_rote = int((rote_pos < 0).sum())
        customer_rote = _take(inputs.rote["customer_rote"].to_numpy("float64"), rote_pos, np.nan)
        uplift = (target_rote[product_pos] - customer_rote[party_pos]) / ROTE_UPLIFT_SCALE
        signals["rote_uplift"] = np.nan_to_num(np.clip(uplift, 0.0, 1.0), nan=0.0)

    # Behaviour: idle cash, regular FX and spend category are per party.
    beh = inputs.behaviour
    beh_pos = _party_lookup(party_index, beh)
    report.parties_without_behaviour = int((beh_pos < 0).sum())
    balance = _take(beh["current_account_balance"].to_numpy("float64"), beh_pos, 0.0)
    spend = np.maximum(_take(beh["monthly_spend"].to_numpy("float64"), beh_pos, 0.0), MIN_MONTHLY_SPEND)
    idle_months = balance / spend
    idle = np.clip(
        (idle_months - IDLE_CASH_BUFFER_MONTHS) / (IDLE_CASH_FULL_MONTHS - IDLE_CASH_BUFFER_MONTHS), 0.0, 1.0
    )
    signals["idle_cash"] = idle[party_pos]
    fx_months = _take(beh["fx_active_months_6m"].astype("float64").to_numpy(), beh_pos, 0.0)
    signals["regular_fx"] = np.clip(fx_months / 6.0, 0.0, 1.0)[party_pos]
    categories = pd.Index(pd.concat([beh["top_spend_category"], products["spend_category"]]).dropna().unique())
    party_cat = _take(categories.get_indexer(beh["top_spend_category"]), beh_pos, -1).astype("int64")
    product_cat = categories.get_indexer(products["spend_category"])
    signals["spend_affinity"] = (
        (party_cat[party_pos] >= 0) & (party_cat[party_pos] == product_cat[product_pos])
    ).astype("float64")

    # cooling_off: a rejection in the 90 days up to the evaluation date.
    rej = inputs.rejections
    eval_day = pd.Timestamp(inputs.evaluation_date)
    days_since = (eval_day - pd.to_datetime(rej["outcome_at"]).dt.normalize()).dt.days.to_numpy()
    recent = (days_since >= 1) & (days_since <= COOLING_OFF_DAYS)
    rej_party = party_index.get_indexer(rej["party_id"])
    rej_product = pd.Index(products["product_id"]).get_indexer(rej["product_id"])
    ok = recent & (rej_party >= 0) & (rej_product >= 0)
    cooling_codes = np.unique(_pair_codes(rej_party[ok], rej_product[ok], n_products))
    signals["cooling_off"] = np.isin(cand_codes, cooling_codes).astype("float64")
    report.pairs_in_cooling_off = int(signals["cooling_off"].sum())

    lifecycle = products["lifecycle_stage"].map(LIFECYCLE_PENALTY).fillna(0.0).to_numpy("float64")
    signals["lifecycle"] = lifecycle[product_pos]

    # suitability: the score as delivered / 100 (unrounded) below the product class's threshold,
    # or unknown where the class fails closed; financial_health (6 dp) is kept for explanations
    raw = _take(inputs.churn["financial_health_score"].to_numpy("float64"), churn_pos, np.nan)[party_pos]
    health = np.round(raw / HEALTH_SCALE, 6)
    if weights is None:
        threshold = penalty = when_unknown = np.zeros(len(cand))
    else:
        rule = weights.matrix.reindex(products["product_class"].to_numpy())
        threshold = rule[HEALTH_THRESHOLD].to_numpy("float64")[product_pos]
        penalty = rule["suitability"].to_numpy("float64")[product_pos]
        when_unknown = rule[WHEN_UNKNOWN].to_numpy("float64")[product_pos]
    unknown = np.isnan(raw)
    below = np.where(unknown, when_unknown >= 1.0, raw / HEALTH_SCALE < threshold)
    if before_issue_22:  # the rule as it was: the 6 dp health compared, an unknown health never fires
        below = health < threshold  # NaN < t is False
    unsuitable = (threshold > 0.0) & (penalty > 0.0) & below
    signals["suitability"] = unsuitable.astype("float64")

    out = pd.DataFrame({"party_id": cand["party_id"].to_numpy(), "product_id": cand["product_id"].to_numpy()})
    for name in ALL_SIGNALS:
        out[name] = np.round(signals[name], 6)
    out["financial_health"] = health
    suppressed = unsuitable & (penalty >= SUPPRESS)
    report.pairs_suppressed_unsuitable = int(suppressed.sum())
    report.pairs_down_weighted_unsuitable = int((unsuitable & ~suppressed).sum())
    report.pairs_in_cooling_off = int(out.loc[~suppressed, "cooling_off"].sum())
    return out.loc[~suppressed].reset_index(drop=True), report


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
    factors = {}
    for name in PENALTY_SIGNALS:
        factors[name] = 1.0 - w[name].to_numpy("float64")[pos] * signals[name].to_numpy("float64")
        penalty *= factors[name]
    score = np.round(np.clip(base * penalty, 0.0, 1.0), SCORE_DECIMALS)

    best = contributions.argmax(axis=1)
    names = np.array(POSITIVE_SIGNALS + (NO_SIGNAL,), dtype=object)
    best = np.where(contributions.max(axis=1) > 0.0, best, len(POSITIVE_SIGNALS))

    out = signals.copy()
    out["score"] = score
    out["primary_signal"] = names[best]
    # the explanation: the exact numbers the score was computed from
    for i, name in enumerate(POSITIVE_SIGNALS):
        out[contribution(name)] = contributions[:, i]
    for name in PENALTY_SIGNALS:
        out[factor(name)] = factors[name]
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
    columns = [
        "party_id",
        "jurisdiction",
        "rank",
        "product_id",
        "score",
        "primary_signal",
        "model_version",
        "evaluated_at",
    ]
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
    inputs: WeekInputs, weights: Weights, evaluated_at: datetime, before_issue_22: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, SignalReport]:
    """signals -> scores -> top 3 in one call; the assets run the same steps one by one
    (`before_issue_22`: the suitability rule as it was, for the fail-open comparison)."""
    signals, report = compute_signals(inputs, weights, before_issue_22)
    scored = score_candidates(signals, inputs.products, weights)
    ranked = top_products(scored, inputs.customers, weights.model_version, evaluated_at)
    return ranked, scored, report


def eligible_candidates(eligibility: pd.DataFrame, customers: pd.DataFrame, product_ids: pd.Series) -> pd.DataFrame:
    """(party_id, product_id) pairs that may be recommended this week.

    A pair passes only if MOD-105 says ELIGIBLE, the party is active and the product is in
    the product register: anything else can never appear in a recommendation.
    """
    active = customers.loc[customers["status"] == ACTIVE, "party_id"]
    keep = (
        (eligibility["eligibility_status"] == ELIGIBLE)
        & eligibility["party_id"].isin(active)
        & eligibility["product_id"].isin(product_ids)
    )
    return eligibility.loc[keep, ["party_id", "product_id"]].reset_index(drop=True)


def reference_week(tables: dict[str, pd.DataFrame], evaluation_date, weights: Weights) -> pd.DataFrame:
    """nbp-1.0's whole week from the source tables: its point-in-time reads, gate and model."""
    ev = pd.Timestamp(evaluation_date)

    def versions(df):
        return df[(df["valid_from"] < ev) & (df["valid_to"].isna() | (df["valid_to"] >= ev))].reset_index(drop=True)

    def snapshot(name):
        if name not in tables:
            return None
        df = tables[name]
        return df[df["as_of_date"] == df.loc[df["as_of_date"] < ev, "as_of_date"].max()].reset_index(drop=True)

    customers = versions(tables["customers"])
    products = versions(tables["product_register"])
    holdings = tables["holdings"]
    offers = tables["offer_history"]
    inputs = WeekInputs(
        candidates=eligible_candidates(snapshot("eligibility"), customers, products["product_id"]),
        customers=customers[customers["status"] == ACTIVE].reset_index(drop=True),
        products=products,
        holdings=holdings[
            (holdings["opened_on"] < ev) & (holdings["closed_on"].isna() | (holdings["closed_on"] >= ev))
        ],
        churn=snapshot("churn_health"),
        behaviour=snapshot("behaviour"),
        rejections=offers.loc[
            (offers["outcome"] == "REJECTED")
            & (offers["outcome_at"] < ev)
            & (offers["outcome_at"] >= ev - pd.Timedelta(days=COOLING_OFF_DAYS + 1)),
            ["party_id", "product_id", "outcome_at"],
        ],
        evaluation_date=evaluation_date,
        rote=snapshot("customer_rote"),
    )
    ranked, _, _ = rank_week(inputs, weights, datetime.combine(evaluation_date, datetime.min.time()))
    return ranked
