"""One pandera model per asset: what each weekly table promises its readers.

These models are enforced on every materialization (see weekly/checks.py) before a row is
written anywhere, and the result is shown as the asset's `contract` check in the UI.
Text columns are declared as object columns with a vectorised all-text check: pandera's
`str` dtype check tests every element in Python, 15 s per 12M-row column at 1M customers.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandas.api.types import infer_dtype
from pandera import extensions
from pandera.typing import Series

from nbp_assets.contract.inputs import (
    AGE_BANDS,
    CUSTOMER_STATUSES,
    JURISDICTIONS,
    LIFECYCLE_STAGES,
    PRODUCT_CLASSES,
    SEGMENTS,
)
from nbp_assets.weekly.vocabulary import ALL_SIGNALS, EXPLANATION_COLUMNS, NO_SIGNAL, POSITIVE_SIGNALS, TOP_N


@extensions.register_check_method(statistics=["skipna"], check_type="vectorized")
def all_text(pandas_obj: pd.Series, *, skipna: bool) -> bool:
    """Every value is a str (nulls allowed when skipna)."""
    return infer_dtype(pandas_obj, skipna=skipna) in ("string", "empty")


def Text(**kwargs):  # noqa: N802 - reads like a type in the models below
    return pa.Field(all_text={"skipna": True}, **kwargs)


class _AssetModel(pa.DataFrameModel):
    class Config:
        strict = True  # an asset's columns are exactly what its readers expect
        coerce = False  # the engine produced these frames: a wrong dtype is a bug, not data


class Weekly(_AssetModel):
    week_start: Series[pa.DateTime]


class CustomersAsset(Weekly):
    """Customers as they stood at the week's evaluation date (all statuses)."""

    party_id: Series[object] = Text(unique=True)
    jurisdiction: Series[object] = Text(isin=JURISDICTIONS)
    segment: Series[object] = Text(isin=SEGMENTS)
    age_band: Series[object] = Text(isin=AGE_BANDS)
    gender: Series[object] = Text(nullable=True)
    status: Series[object] = Text(isin=CUSTOMER_STATUSES)
    income: Series[pd.Int64Dtype] = pa.Field(ge=0, nullable=True)
    fico: Series[pd.Int64Dtype] = pa.Field(ge=300, le=850, nullable=True)


class ActivityAsset(Weekly):
    """Customer activity events of the week (the next-best-offer recipe's stream)."""

    activity_id: Series[pd.Int64Dtype] = pa.Field(unique=True)
    party_id: Series[object] = Text()
    event_time: Series[pa.DateTime]
    activity_type: Series[object] = Text()
    propensity_to_buy: Series[float] = pa.Field(ge=0.0, le=1.0)
    ip_address: Series[object] = Text(nullable=True)


class ProductsAsset(Weekly):
    """The product register as in force at the week's evaluation date (one version per product)."""

    product_id: Series[object] = Text(unique=True)
    product_name: Series[object] = Text()
    product_class: Series[object] = Text(isin=PRODUCT_CLASSES)
    lifecycle_stage: Series[object] = Text(isin=LIFECYCLE_STAGES)
    is_retention: Series[bool]
    spend_category: Series[object] = Text(nullable=True)
    target_rote: Series[float] = pa.Field(ge=-1.0, le=1.0)


class EligibilityAsset(Weekly):
    """ELIGIBLE (party, product) pairs of active customers: the only rankable pairs."""

    snapshot_date: Series[pa.DateTime]
    party_id: Series[object] = Text()
    product_id: Series[object] = Text()


_signal = dict(ge=0.0, le=1.0, nullable=False)


def _weekly_model(name: str, doc: str, columns: dict[str, tuple[object, object]]) -> type[Weekly]:
    """A Weekly model with `columns` (name: (Series type, field)) in this order. The signals'
    and the scores' columns are built from the model's vocabulary, so adding a signal
    (weekly/vocabulary.py) adds its columns here without an edit."""
    namespace = {
        "__doc__": doc,
        "__module__": __name__,
        "__annotations__": {column: series for column, (series, _) in columns.items()},
        **{column: field for column, (_, field) in columns.items()},
    }
    return type(name, (Weekly,), namespace)


_PAIR = {"party_id": (Series[object], Text()), "product_id": (Series[object], Text())}

SignalsAsset = _weekly_model(
    "SignalsAsset",
    "Every ranking signal, each in [0, 1], per eligible (party, product) pair.",
    {
        **_PAIR,
        **{s: (Series[float], pa.Field(**_signal)) for s in ALL_SIGNALS},
        # MOD-040 financial health score / 100, the suitability rule's input; NULL: no MOD-040 row
        "financial_health": (Series[float], pa.Field(ge=0.0, le=1.0, nullable=True)),
    },
)

# The explanation: weight x signal per lifting signal, 1 - weight x signal per penalty;
# score = round6(min(1, contributions summed in this order) x factors in this order).
ScoresAsset = _weekly_model(
    "ScoresAsset",
    "The weighted score of every candidate pair and the signal that contributed most "
    "(the signals themselves stay in nbp_work.signals, keyed the same way).",
    {
        **_PAIR,
        "score": (Series[float], pa.Field(ge=0.0, le=1.0)),
        "primary_signal": (Series[object], Text(isin=[*POSITIVE_SIGNALS, NO_SIGNAL])),
        "model_version": (Series[object], Text(str_length={"min_value": 1})),
        **{column: (Series[float], pa.Field(**_signal)) for column in EXPLANATION_COLUMNS},
    },
)


# The suitability rule's settings that withhold a pair (weekly/weights.py HEALTH_THRESHOLD,
# WHEN_UNKNOWN; a test keeps them equal).
WITHHELD_RULES = ["suitability_health_below", "suitability_when_unknown"]


class WithheldAsset(Weekly):
    """The why-not record: every (party, product) candidate pair the suitability rule withheld
    (suppressed) this week, with the rule, the MOD-040 health score as delivered (NULL when
    unknown) and the class's threshold."""

    party_id: Series[object] = Text()
    product_id: Series[object] = Text()
    product_class: Series[object] = Text(isin=PRODUCT_CLASSES)
    rule: Series[object] = Text(isin=WITHHELD_RULES)
    financial_health_score: Series[float] = pa.Field(ge=0.0, le=100.0, nullable=True)
    health_below: Series[float] = pa.Field(gt=0.0, le=1.0)
    reason: Series[object] = Text()


class NbpRankedAsset(_AssetModel):
    """product_intelligence.next_best_product: exactly the seed's columns."""

    party_id: Series[object] = Text()
    jurisdiction: Series[object] = Text(isin=JURISDICTIONS)
    rank: Series["int32"] = pa.Field(ge=1, le=TOP_N)  # noqa: F821  (pandera reads the dtype name)
    product_id: Series[object] = Text()
    score: Series[float] = pa.Field(ge=0.0, le=1.0)
    primary_signal: Series[object] = Text(isin=[*POSITIVE_SIGNALS, NO_SIGNAL])
    model_version: Series[object] = Text(str_length={"min_value": 1})
    evaluated_at: Series[pa.DateTime]


class NbpCurrentAsset(NbpRankedAsset):
    """product_intelligence.nbp_current in PostgreSQL: the current week's top 3."""


_rate = dict(ge=0.0, le=1.0)


class OfferOutcomesAsset(Weekly):
    """nbp_work.offer_outcomes: per grouping (`by`) and group, the offers made in the week,
    how many were accepted and rejected, and both rates with their 95% intervals."""

    by: Series[object] = Text()
    group: Series[object] = Text()
    offered: Series[int] = pa.Field(ge=1)
    accepted: Series[int] = pa.Field(ge=0)
    rejected: Series[int] = pa.Field(ge=0)
    acceptance_rate: Series[float] = pa.Field(**_rate)
    acceptance_ci_low: Series[float] = pa.Field(**_rate)
    acceptance_ci_high: Series[float] = pa.Field(**_rate)
    rejection_rate: Series[float] = pa.Field(**_rate)
    rejection_ci_low: Series[float] = pa.Field(**_rate)
    rejection_ci_high: Series[float] = pa.Field(**_rate)


class ControlGroupAsset(Weekly):
    """nbp_work.control_group: the week's held-out active customers (ranked and kept in the
    history, not published to nbp_current), with the share and the salt's digest that drew them."""

    party_id: Series[object] = Text(unique=True)
    share: Series[float] = pa.Field(gt=0.0, le=0.5)
    salt_digest: Series[object] = Text()


_maybe_rate = dict(ge=0.0, le=1.0, nullable=True)
_maybe_pp = dict(ge=-100.0, le=100.0, nullable=True)


class ControlOutcomesAsset(Weekly):
    """nbp_work.control_outcomes: per product (and `(all)`), acceptance of the offers made in
    the week to treated and to held-out customers, with 95% Wilson intervals, and the
    difference treated - held-out in percentage points with its 95% interval (Newcombe)."""

    product_id: Series[object] = Text(unique=True)
    treated_offered: Series[int] = pa.Field(ge=0)
    treated_accepted: Series[int] = pa.Field(ge=0)
    treated_acceptance_rate: Series[float] = pa.Field(**_maybe_rate)
    treated_ci_low: Series[float] = pa.Field(**_maybe_rate)
    treated_ci_high: Series[float] = pa.Field(**_maybe_rate)
    held_out_offered: Series[int] = pa.Field(ge=0)
    held_out_accepted: Series[int] = pa.Field(ge=0)
    held_out_acceptance_rate: Series[float] = pa.Field(**_maybe_rate)
    held_out_ci_low: Series[float] = pa.Field(**_maybe_rate)
    held_out_ci_high: Series[float] = pa.Field(**_maybe_rate)
    difference_pp: Series[float] = pa.Field(**_maybe_pp)
    difference_ci_low_pp: Series[float] = pa.Field(**_maybe_pp)
    difference_ci_high_pp: Series[float] = pa.Field(**_maybe_pp)


class ModelDriftAsset(Weekly):
    """nbp_work.model_drift: each drift metric of the week, the previous week's value (NaN in
    a first week), the change, its threshold and whether it drifted. A distribution's row
    (signal_psi, score_psi: psi_<signal>_vs_<previous|approval>) has the PSI as its value
    and no previous value or change."""

    metric: Series[object] = Text(unique=True)
    kind: Series[object] = Text(isin=["signal_mean", "score_quantile", "no_eligible_share", "signal_psi", "score_psi"])
    value: Series[float] = pa.Field(nullable=True)
    previous: Series[float] = pa.Field(nullable=True)
    change: Series[float] = pa.Field(nullable=True)
    threshold: Series[float] = pa.Field(gt=0.0)
    drifted: Series[bool]


# ----------------------------------------------------------------------------- model registry
# (issue 22: weekly/registry.py, simulation/approve.py, docs/governance.md)


class ModelVersionsAsset(_AssetModel):
    """product_intelligence.model_versions: one row per model_version, its configuration's
    digest, the digest of the SQL it ran, the weeks it ranked and its approval."""

    model_version: Series[object] = Text(str_length={"min_value": 1})
    code_version: Series[object] = Text(str_length={"min_value": 1})
    weights_digest: Series[object] = Text(str_length={"min_value": 1})
    sql_digest: Series[object] = Text(nullable=True)  # the first week's (null: approved, not run yet)
    last_sql_digest: Series[object] = Text(nullable=True)
    first_week: Series[pa.DateTime] = pa.Field(nullable=True)
    last_week: Series[pa.DateTime] = pa.Field(nullable=True)
    first_run_at: Series[pa.DateTime] = pa.Field(nullable=True)
    last_run_at: Series[pa.DateTime] = pa.Field(nullable=True)
    approved_by: Series[object] = Text(nullable=True)
    approved_at: Series[pa.DateTime] = pa.Field(nullable=True)
    approval_reason: Series[object] = Text(nullable=True)
    approval_simulation_id: Series[object] = Text(nullable=True)


class ModelWeightsAsset(_AssetModel):
    """product_intelligence.model_weights: every weight and suitability setting of a
    model_version (live or challenger), in the weights file's long format."""

    model_version: Series[object] = Text(str_length={"min_value": 1})
    product_class: Series[object] = Text(isin=PRODUCT_CLASSES)
    signal: Series[object] = Text()
    weight: Series[float] = pa.Field(ge=0.0)


class SimulationsAsset(_AssetModel):
    """product_intelligence.simulations: every challenger simulation, who ran it and its result."""

    simulation_id: Series[object] = Text(str_length={"min_value": 1})
    run_at: Series[pa.DateTime]
    run_by: Series[object] = Text(str_length={"min_value": 1})
    week_start: Series[pa.DateTime]
    champion_model_version: Series[object] = Text(str_length={"min_value": 1})
    challenger_model_version: Series[object] = Text(str_length={"min_value": 1})
    challenger_weights_digest: Series[object] = Text(str_length={"min_value": 1})
    weights_source: Series[object] = Text()
    customers: Series[pd.Int64Dtype] = pa.Field(ge=0)
    top1_changed: Series[pd.Int64Dtype] = pa.Field(ge=0)
    top1_changed_share: Series[float] = pa.Field(**_rate)
    top3_changed: Series[pd.Int64Dtype] = pa.Field(ge=0)
    top3_changed_share: Series[float] = pa.Field(**_rate)
    breaches_live: Series[pd.Int64Dtype] = pa.Field(ge=0)
    breaches_challenger: Series[pd.Int64Dtype] = pa.Field(ge=0)
    breaches_added: Series[pd.Int64Dtype] = pa.Field(ge=0)
    breaches_removed: Series[pd.Int64Dtype] = pa.Field(ge=0)
    fairness_gaps: Series[object] = Text()  # JSON: per product and dimension, gaps before / after
    report: Series[object] = Text()  # the report as `simulate` printed it
