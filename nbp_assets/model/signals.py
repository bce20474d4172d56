"""Ranking signals for every eligible (party, product) pair of a week, each in [0, 1].

The seed's ranking table, one column per signal:
- relationship_gap: share of same-segment peers holding the product ("most customers like
  you have this; you don't"). Products the party already holds are not candidates at all.
- churn_risk: the party's MOD-040 churn probability, on retention products only.
- rote_uplift: how far the product's target ROTE exceeds the party's MOD-106 ROTE.
- idle_cash: months of spend sitting in the current account beyond a 3-month buffer.
- regular_fx: share of the last 6 months with FX activity.
- spend_affinity: the product serves the party's top spend category.
- cooling_off (penalty): an offer of this product was rejected within 90 days.
- lifecycle (penalty): the product is in sunset (1.0) or under capacity (0.5).

Which signal matters for which product is decided by the weights per product class, not
here: this module only measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from nbp_assets.model.weights import ALL_SIGNALS

COOLING_OFF_DAYS = 90  # a rejection this many days or fewer before evaluation still counts
IDLE_CASH_BUFFER_MONTHS = 3.0  # spend a current account should hold anyway
IDLE_CASH_FULL_MONTHS = 12.0  # this many months of spend or more is fully idle
MIN_MONTHLY_SPEND = 100.0  # avoid dividing by ~0 for customers who barely spend
ROTE_UPLIFT_SCALE = 0.20  # a product 20 ROTE points above the customer scores 1
LIFECYCLE_PENALTY = {"SUNSET": 1.0, "UNDER_CAPACITY": 0.5}


@dataclass
class WeekInputs:
    """Everything the signals need for one week, already read as of the evaluation date."""

    candidates: pd.DataFrame  # party_id, product_id: ELIGIBLE pairs of active customers
    customers: pd.DataFrame  # party_id, segment (active customers)
    products: pd.DataFrame  # product_id, product_class, lifecycle_stage, is_retention, spend_category, target_rote
    holdings: pd.DataFrame  # party_id, product_id: open at the evaluation date
    churn: pd.DataFrame  # party_id, churn_probability
    behaviour: pd.DataFrame  # party_id, current_account_balance, monthly_spend, fx_active_months_6m, top_spend_category
    rejections: pd.DataFrame  # party_id, product_id, outcome_at: REJECTED offers decided before evaluation
    evaluation_date: date
    rote: pd.DataFrame | None = None  # party_id, customer_rote; None when MOD-106 is absent


@dataclass
class SignalReport:
    """What the run should tell its operator about the signals (goes to UI metadata)."""

    dropped_signals: list[str] = field(default_factory=list)
    parties_without_churn: int = 0
    parties_without_behaviour: int = 0
    parties_without_rote: int = 0
    pairs_in_cooling_off: int = 0
    pairs_already_held: int = 0


def _party_lookup(parties: pd.Index, frame: pd.DataFrame) -> np.ndarray:
    """Row position in `frame` of each party (-1 when the party has no row)."""
    return pd.Index(frame["party_id"]).get_indexer(parties)


def _take(values: np.ndarray, pos: np.ndarray, fill: float) -> np.ndarray:
    out = np.where(pos >= 0, values[np.clip(pos, 0, None)], fill) if len(values) else np.full(len(pos), fill)
    return out.astype("float64")


def _pair_codes(party_pos: np.ndarray, product_pos: np.ndarray, n_products: int) -> np.ndarray:
    return party_pos.astype("int64") * n_products + product_pos.astype("int64")


def compute_signals(inputs: WeekInputs) -> tuple[pd.DataFrame, SignalReport]:
    """One row per candidate pair with party_id, product_id and every signal column."""
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
        cand.loc[not_held], party_pos[not_held], product_pos[not_held], cand_codes[not_held]
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

    out = pd.DataFrame({"party_id": cand["party_id"].to_numpy(), "product_id": cand["product_id"].to_numpy()})
    for name in ALL_SIGNALS:
        out[name] = np.round(signals[name], 6)
    return out, report
