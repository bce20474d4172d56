"""One pandera model per asset: what each weekly table promises its readers.

These models are enforced on every materialization (see assets/checks.py) before a row is
written anywhere, and the result is shown as the asset's `contract` check in the UI.
Uniqueness of large keys is left to the business checks, which do it on integer codes:
pandera's own uniqueness check costs seconds per million rows.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from nbp_assets.contract.inputs import AGE_BANDS, CUSTOMER_STATUSES, JURISDICTIONS, SEGMENTS
from nbp_assets.model.fairness import DEFAULT_DIMENSIONS
from nbp_assets.model.ranking import NO_SIGNAL, TOP_N
from nbp_assets.model.weights import POSITIVE_SIGNALS


class _AssetModel(pa.DataFrameModel):
    class Config:
        strict = True  # an asset's columns are exactly what its readers expect
        coerce = False  # the engine produced these frames: a wrong dtype is a bug, not data


class _Weekly(_AssetModel):
    week_start: Series[pa.DateTime]


class CustomersAsset(_Weekly):
    """Customers as they stood at the week's evaluation date (all statuses)."""

    party_id: Series[str] = pa.Field(unique=True)
    jurisdiction: Series[str] = pa.Field(isin=JURISDICTIONS)
    segment: Series[str] = pa.Field(isin=SEGMENTS)
    age_band: Series[str] = pa.Field(isin=AGE_BANDS)
    gender: Series[str] = pa.Field(nullable=True)
    status: Series[str] = pa.Field(isin=CUSTOMER_STATUSES)
    income: Series[pd.Int64Dtype] = pa.Field(ge=0, nullable=True)
    fico: Series[pd.Int64Dtype] = pa.Field(ge=300, le=850, nullable=True)


class ActivityAsset(_Weekly):
    """Customer activity events of the week (the next-best-offer recipe's stream)."""

    activity_id: Series[pd.Int64Dtype] = pa.Field(unique=True)
    party_id: Series[str]
    event_time: Series[pa.DateTime]
    activity_type: Series[str]
    propensity_to_buy: Series[float] = pa.Field(ge=0.0, le=1.0)
    ip_address: Series[str] = pa.Field(nullable=True)


class EligibilityAsset(_Weekly):
    """ELIGIBLE (party, product) pairs of active customers: the only rankable pairs."""

    snapshot_date: Series[pa.DateTime]
    party_id: Series[str]
    product_id: Series[str]


_signal = dict(ge=0.0, le=1.0, nullable=False)


class SignalsAsset(_Weekly):
    """Every ranking signal, each in [0, 1], per eligible (party, product) pair."""

    party_id: Series[str]
    product_id: Series[str]
    relationship_gap: Series[float] = pa.Field(**_signal)
    churn_risk: Series[float] = pa.Field(**_signal)
    rote_uplift: Series[float] = pa.Field(**_signal)
    idle_cash: Series[float] = pa.Field(**_signal)
    regular_fx: Series[float] = pa.Field(**_signal)
    spend_affinity: Series[float] = pa.Field(**_signal)
    cooling_off: Series[float] = pa.Field(**_signal)
    lifecycle: Series[float] = pa.Field(**_signal)


class ScoresAsset(SignalsAsset):
    """Signals plus the weighted score and the signal that contributed most."""

    score: Series[float] = pa.Field(ge=0.0, le=1.0)
    primary_signal: Series[str] = pa.Field(isin=[*POSITIVE_SIGNALS, NO_SIGNAL])
    model_version: Series[str] = pa.Field(str_length={"min_value": 1})


class NbpRankedAsset(_AssetModel):
    """product_intelligence.next_best_product: exactly the seed's columns."""

    party_id: Series[str]
    jurisdiction: Series[str] = pa.Field(isin=JURISDICTIONS)
    rank: Series["int32"] = pa.Field(ge=1, le=TOP_N)
    product_id: Series[str]
    score: Series[float] = pa.Field(ge=0.0, le=1.0)
    primary_signal: Series[str] = pa.Field(isin=[*POSITIVE_SIGNALS, NO_SIGNAL])
    model_version: Series[str] = pa.Field(str_length={"min_value": 1})
    evaluated_at: Series[pa.DateTime]


class NbpCurrentAsset(NbpRankedAsset):
    """product_intelligence.nbp_current in PostgreSQL: the current week's top 3."""


class FairnessReportAsset(_Weekly):
    """Recommendation rate per product and demographic group, with each product's gap."""

    product_id: Series[str]
    dimension: Series[str] = pa.Field(isin=list(DEFAULT_DIMENSIONS))
    group: Series[str]
    customers: Series[int] = pa.Field(ge=0)
    recommended: Series[int] = pa.Field(ge=0)
    rate: Series[float] = pa.Field(ge=0.0, le=1.0)
    gap_pp: Series[float] = pa.Field(ge=0.0, le=100.0)
    breach: Series[bool]
