"""The data contract for the upstream inputs of MOD-107 (see docs/data-contract.md).

One pandera model per source table. The same models validate the synthetic generator's
output, a user's own CSV/Parquet files and what the weekly run reads from the warehouse,
so a table means the same thing whichever way it arrived.

Time semantics (why the columns look like this): a backfill of an old week must see the
bank as it was then, so every table says when each row was true.
- Versioned masters (customers, product_register): valid_from <= day < valid_to.
- Snapshots published by other engines (eligibility, churn_health, customer_rote,
  behaviour): the run uses the latest as_of_date before the evaluation date.
- Events (holdings, offer_history, activity): only what happened before the evaluation
  date counts.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

JURISDICTIONS = ["GB", "IE", "JE", "GG", "IM"]
SEGMENTS = ["MASS", "MASS_AFFLUENT", "AFFLUENT", "PRIVATE"]
AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
CUSTOMER_STATUSES = ["ACTIVE", "DORMANT", "CLOSED"]
GENDERS = ["F", "M", "X"]
PRODUCT_CLASSES = [
    "CURRENT_ACCOUNT",
    "SAVINGS",
    "CARD",
    "LENDING",
    "MORTGAGE",
    "INVESTMENT",
    "INSURANCE",
    "FX_WALLET",
]
LIFECYCLE_STAGES = ["LAUNCH", "GROWTH", "MATURE", "SUNSET", "UNDER_CAPACITY"]
ELIGIBILITY_STATUSES = ["ELIGIBLE", "INELIGIBLE", "REFERRED"]
OFFER_OUTCOMES = ["PENDING", "ACCEPTED", "REJECTED", "EXPIRED"]
SPEND_CATEGORIES = ["EVERYDAY", "TRAVEL", "HOME", "FAMILY", "LEISURE", "BUSINESS"]


# Identifiers are keys in the warehouse and in PostgreSQL's nbp_current primary key: a
# megabyte party_id once passed, was written to the history and then broke the publish.
MAX_ID_LENGTH = 64
MAX_TEXT_LENGTH = 256
_ID = {"min_value": 1, "max_value": MAX_ID_LENGTH}
_TEXT = {"min_value": 1, "max_value": MAX_TEXT_LENGTH}


class _Contract(pa.DataFrameModel):
    class Config:
        coerce = True
        strict = "filter"  # extra columns in a user's file are ignored, not an error


class CustomersInput(_Contract):
    """Customer master, versioned (SCD type 2). One row per party per version."""

    party_id: Series[str] = pa.Field(str_length=_ID)
    jurisdiction: Series[str] = pa.Field(isin=JURISDICTIONS)
    segment: Series[str] = pa.Field(isin=SEGMENTS)
    age_band: Series[str] = pa.Field(isin=AGE_BANDS)
    gender: Series[str] = pa.Field(isin=GENDERS, nullable=True)
    status: Series[str] = pa.Field(isin=CUSTOMER_STATUSES)
    income: Series[pd.Int64Dtype] = pa.Field(ge=0, nullable=True)
    fico: Series[pd.Int64Dtype] = pa.Field(ge=300, le=850, nullable=True)
    valid_from: Series[pa.DateTime]
    valid_to: Series[pa.DateTime] = pa.Field(nullable=True)

    class Config:
        unique = ["party_id", "valid_from"]


class ProductRegisterInput(_Contract):
    """Product register, versioned. Lifecycle stage and retention flag drive ranking."""

    product_id: Series[str] = pa.Field(str_length=_ID)
    product_name: Series[str] = pa.Field(str_length=_TEXT)
    product_class: Series[str] = pa.Field(isin=PRODUCT_CLASSES)
    lifecycle_stage: Series[str] = pa.Field(isin=LIFECYCLE_STAGES)
    is_retention: Series[bool]
    spend_category: Series[str] = pa.Field(isin=SPEND_CATEGORIES, nullable=True)
    target_rote: Series[float] = pa.Field(ge=-1.0, le=1.0)
    valid_from: Series[pa.DateTime]
    valid_to: Series[pa.DateTime] = pa.Field(nullable=True)

    class Config:
        unique = ["product_id", "valid_from"]


class HoldingsInput(_Contract):
    """Products a party holds or held: open from opened_on until closed_on (exclusive)."""

    party_id: Series[str] = pa.Field(str_length=_ID)
    product_id: Series[str] = pa.Field(str_length=_ID)
    opened_on: Series[pa.DateTime]
    closed_on: Series[pa.DateTime] = pa.Field(nullable=True)

    class Config:
        unique = ["party_id", "product_id", "opened_on"]


class EligibilityInput(_Contract):
    """MOD-105 eligibility matrix snapshot: status per party and product."""

    as_of_date: Series[pa.DateTime]
    party_id: Series[str] = pa.Field(str_length=_ID)
    product_id: Series[str] = pa.Field(str_length=_ID)
    eligibility_status: Series[str] = pa.Field(isin=ELIGIBILITY_STATUSES)

    class Config:
        unique = ["as_of_date", "party_id", "product_id"]


class ChurnHealthInput(_Contract):
    """MOD-040 snapshot: churn probability and financial health score per party."""

    as_of_date: Series[pa.DateTime]
    party_id: Series[str] = pa.Field(str_length=_ID)
    churn_probability: Series[float] = pa.Field(ge=0.0, le=1.0)
    financial_health_score: Series[float] = pa.Field(ge=0.0, le=100.0)

    class Config:
        unique = ["as_of_date", "party_id"]


class CustomerRoteInput(_Contract):
    """MOD-106 snapshot (optional input): the party's return on tangible equity."""

    as_of_date: Series[pa.DateTime]
    party_id: Series[str] = pa.Field(str_length=_ID)
    customer_rote: Series[float] = pa.Field(ge=-1.0, le=1.0)

    class Config:
        unique = ["as_of_date", "party_id"]


class OfferHistoryInput(_Contract):
    """MOD-108 offer history: what was offered when, and how the customer answered."""

    offer_id: Series[str] = pa.Field(unique=True, str_length=_ID)
    party_id: Series[str] = pa.Field(str_length=_ID)
    product_id: Series[str] = pa.Field(str_length=_ID)
    offered_at: Series[pa.DateTime]
    outcome: Series[str] = pa.Field(isin=OFFER_OUTCOMES)
    outcome_at: Series[pa.DateTime] = pa.Field(nullable=True)


class BehaviourInput(_Contract):
    """Behavioural snapshot per party: balances (idle cash), spend and FX activity."""

    as_of_date: Series[pa.DateTime]
    party_id: Series[str] = pa.Field(str_length=_ID)
    current_account_balance: Series[float] = pa.Field(ge=0.0)
    monthly_spend: Series[float] = pa.Field(ge=0.0)
    fx_active_months_6m: Series[pd.Int64Dtype] = pa.Field(ge=0, le=6)
    top_spend_category: Series[str] = pa.Field(isin=SPEND_CATEGORIES, nullable=True)

    class Config:
        unique = ["as_of_date", "party_id"]


class ActivityInput(_Contract):
    """Customer activity events (the next-best-offer recipe's stream), keyed by party."""

    activity_id: Series[pd.Int64Dtype] = pa.Field(unique=True)
    party_id: Series[str] = pa.Field(str_length=_ID)
    event_time: Series[pa.DateTime]
    activity_type: Series[str] = pa.Field(str_length=_ID)
    propensity_to_buy: Series[float] = pa.Field(ge=0.0, le=1.0)
    ip_address: Series[str] = pa.Field(nullable=True, str_length={"max_value": MAX_ID_LENGTH})


class WeightsInput(_Contract):
    """Ranking weights per product class and signal (see nbp_assets/weekly/weights.py)."""

    product_class: Series[str] = pa.Field(isin=PRODUCT_CLASSES)
    signal: Series[str]
    weight: Series[float] = pa.Field(ge=0.0, le=1.0)

    class Config:
        unique = ["product_class", "signal"]


# Table name -> (model, required). Table names are also the file stems the loader accepts
# and the table names in the warehouse's source schema.
SOURCE_TABLES: dict[str, tuple[type[pa.DataFrameModel], bool]] = {
    "customers": (CustomersInput, True),
    "product_register": (ProductRegisterInput, True),
    "holdings": (HoldingsInput, True),
    "eligibility": (EligibilityInput, True),
    "churn_health": (ChurnHealthInput, True),
    "customer_rote": (CustomerRoteInput, False),
    "offer_history": (OfferHistoryInput, True),
    "behaviour": (BehaviourInput, True),
    "activity": (ActivityInput, True),
}
