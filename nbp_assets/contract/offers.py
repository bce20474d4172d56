"""pandera models of the next-best-offer recipe: its two lookup inputs and its assets.

The recipe's own tables keep the recipe's names: the two outputs use its upper-case
column names (CUSTOMER_ID is our party_id), so a reader of the ksqlDB stream
NEXT_BEST_OFFER_LOOKUP finds the same columns here. The activity events and the customer
master are the weekly engine's `activity` and `customers` inputs (contract/inputs.py).

Text columns of the two stream outputs carry no str_length check: it runs per element in
Python (1.5 s per million offers) and the inputs' contracts already enforce it.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from nbp_assets.contract.assets import Text, _AssetModel

# The rule's inputs: column prefix in the rules table -> what it bounds.
RULE_DIMENSIONS = ("income", "fico", "propensity")
BOUNDS = ("gt", "ge", "lt", "le")
BOUND_COLUMNS = tuple(f"{dim}_{op}" for dim in RULE_DIMENSIONS for op in BOUNDS)


class _Input(pa.DataFrameModel):
    class Config:
        coerce = True
        strict = "filter"


class OffersInput(_Input):
    """The recipe's OFFERS table: what each OFFER_ID means to the customer. Optional: the
    recipe's five offers are used when the bank provides none."""

    offer_id: Series[pd.Int64Dtype] = pa.Field(ge=1, unique=True)
    offer_name: Series[str] = pa.Field(str_length={"min_value": 1})
    offer_url: Series[str] = pa.Field(str_length={"min_value": 1})


_bound = dict(nullable=True)


class OfferRulesInput(_Input):
    """The offer rule as data, versioned. Each row is one WHEN of the recipe's CASE (or its
    ELSE), tried in priority order within its version; the first rule whose every bound
    holds wins. A version applies to the events from its valid_from on. An empty bound
    is no condition; a bound on a missing income or FICO never holds (SQL semantics)."""

    rules_version: Series[pd.Int64Dtype] = pa.Field(ge=1)
    valid_from: Series[pa.DateTime]
    priority: Series[pd.Int64Dtype] = pa.Field(ge=1)
    offer_id: Series[pd.Int64Dtype] = pa.Field(ge=1)
    is_else: Series[bool]
    income_gt: Series[float] = pa.Field(**_bound)
    income_ge: Series[float] = pa.Field(**_bound)
    income_lt: Series[float] = pa.Field(**_bound)
    income_le: Series[float] = pa.Field(**_bound)
    fico_gt: Series[float] = pa.Field(**_bound)
    fico_ge: Series[float] = pa.Field(**_bound)
    fico_lt: Series[float] = pa.Field(**_bound)
    fico_le: Series[float] = pa.Field(**_bound)
    propensity_gt: Series[float] = pa.Field(**_bound)
    propensity_ge: Series[float] = pa.Field(**_bound)
    propensity_lt: Series[float] = pa.Field(**_bound)
    propensity_le: Series[float] = pa.Field(**_bound)
    description: Series[str] = pa.Field(nullable=True)

    class Config:
        unique = ["rules_version", "priority"]


# Table name -> model. Optional inputs beside SOURCE_TABLES: absent means the recipe's own.
OFFER_SOURCE_TABLES: dict[str, type[pa.DataFrameModel]] = {
    "offers": OffersInput,
    "offer_rules": OfferRulesInput,
}


class OffersAsset(_AssetModel):
    """The offers the rule can pick, with the name and link shown to the customer."""

    offer_id: Series[pd.Int64Dtype] = pa.Field(ge=1, unique=True)
    offer_name: Series[object] = Text(str_length={"min_value": 1})
    offer_url: Series[object] = Text(str_length={"min_value": 1})


class OfferRulesAsset(OfferRulesInput):
    """Every version of the offer rule, as validated."""

    description: Series[object] = Text(nullable=True)

    class Config:
        strict = True
        coerce = False
        unique = ["rules_version", "priority"]


class NextBestOfferAsset(_AssetModel):
    """The recipe's NEXT_BEST_OFFER stream, one row per offered event, plus its lineage:
    when the event happened, which customer version and which rule decided, and in which
    micro-batch."""

    ACTIVITY_ID: Series[pd.Int64Dtype] = pa.Field(unique=True)
    CUSTOMER_ID: Series[object] = Text()
    EVENT_TIME: Series[pa.DateTime]
    PROPENSITY_TO_BUY: Series[float] = pa.Field(ge=0.0, le=1.0)
    ACTIVITY_TYPE: Series[object] = Text()
    INCOME: Series[pd.Int64Dtype] = pa.Field(ge=0, nullable=True)
    FICO: Series[pd.Int64Dtype] = pa.Field(ge=300, le=850, nullable=True)
    OFFER_ID: Series[pd.Int64Dtype] = pa.Field(ge=1)
    RULES_VERSION: Series[pd.Int64Dtype] = pa.Field(ge=1)
    RULE_PRIORITY: Series[pd.Int64Dtype] = pa.Field(ge=1)
    CUSTOMER_VALID_FROM: Series[pa.DateTime]
    BATCH_KEY: Series[object] = Text()


class NextBestOfferLookupAsset(_AssetModel):
    """The recipe's NEXT_BEST_OFFER_LOOKUP: exactly its nine columns, in its order."""

    OFFER_ID: Series[pd.Int64Dtype] = pa.Field(ge=1)
    ACTIVITY_ID: Series[pd.Int64Dtype] = pa.Field(unique=True)
    CUSTOMER_ID: Series[object] = Text()
    PROPENSITY_TO_BUY: Series[float] = pa.Field(ge=0.0, le=1.0)
    ACTIVITY_TYPE: Series[object] = Text()
    INCOME: Series[pd.Int64Dtype] = pa.Field(ge=0, nullable=True)
    FICO: Series[pd.Int64Dtype] = pa.Field(ge=300, le=850, nullable=True)
    OFFER_NAME: Series[object] = Text()
    OFFER_URL: Series[object] = Text()

    class Config:
        ordered = True


class NextBestOfferPendingAsset(_AssetModel):
    """Events whose customer has no record yet (the recipe's INNER JOIN would drop them),
    with the micro-batch that first saw each."""

    ACTIVITY_ID: Series[pd.Int64Dtype] = pa.Field(unique=True)
    CUSTOMER_ID: Series[object] = Text()
    EVENT_TIME: Series[pa.DateTime]
    ACTIVITY_TYPE: Series[object] = Text()
    PROPENSITY_TO_BUY: Series[float] = pa.Field(ge=0.0, le=1.0)
    FIRST_SEEN_BATCH: Series[object] = Text()


class NextBestOfferClaimsAsset(_AssetModel):
    """(BATCH_KEY, ACTIVITY_ID) for every event a micro-batch set out to offer."""

    BATCH_KEY: Series[object] = Text()
    ACTIVITY_ID: Series[pd.Int64Dtype]


# The recipe's upper-case names of the columns the offer outputs take from an activity event
# (the activity contract's names) and from the customer version it joins: the one mapping
# the warehouse path, the stream processor and the pending table all use.
FROM_EVENT = {
    "activity_id": "ACTIVITY_ID",
    "party_id": "CUSTOMER_ID",
    "event_time": "EVENT_TIME",
    "propensity_to_buy": "PROPENSITY_TO_BUY",
    "activity_type": "ACTIVITY_TYPE",
}
FROM_VERSION = {"income": "INCOME", "fico": "FICO", "valid_from": "CUSTOMER_VALID_FROM"}
FROM_RULE = ("OFFER_ID", "RULES_VERSION", "RULE_PRIORITY")  # what rules.assign_arrays returns, in order
FROM_OFFER = {"offer_name": "OFFER_NAME", "offer_url": "OFFER_URL"}  # the lookup's columns from the offers table
