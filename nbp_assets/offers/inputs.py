"""Read the next-best-offer inputs from the warehouse, each checked against its contract there.

offers and offer_rules are optional source tables (nbp_source.offers, nbp_source.offer_rules):
absent, the recipe's own five offers and CASE are used. Activity events and customer
versions are the weekly engine's inputs, read here by event rather than by week.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from nbp_assets.contract.inputs import ActivityInput, CustomersInput
from nbp_assets.contract.offers import OffersInput
from nbp_assets.contract.sql_checks import coerce_types
from nbp_assets.contract.validation import validate
from nbp_assets.core import sql
from nbp_assets.core.warehouse import SOURCE_SCHEMA, WarehouseResource
from nbp_assets.offers.model import DEFAULT_OFFERS_FILE
from nbp_assets.offers.rules import DEFAULT_RULES_FILE, RuleSet, rules_from_frame
from nbp_assets.sources.reader import read

OFFERS_SOURCE = f"{SOURCE_SCHEMA}.offers"
RULES_SOURCE = f"{SOURCE_SCHEMA}.offer_rules"
ACTIVITY_SOURCE = f"{SOURCE_SCHEMA}.activity"
CUSTOMERS_SOURCE = f"{SOURCE_SCHEMA}.customers"


def _read_all(wh: WarehouseResource, table: str) -> pd.DataFrame:
    return wh.query(sql.render("core", "select", columns="*", relation=table).text)


def offers(wh: WarehouseResource) -> tuple[pd.DataFrame, str]:
    """(offers, where they came from): the bank's table, else the recipe's five offers."""
    if wh.table_exists(OFFERS_SOURCE):
        return read(wh, OffersInput, OFFERS_SOURCE, order_by="offer_id"), OFFERS_SOURCE
    source = f"default: {DEFAULT_OFFERS_FILE.name} (the recipe's OFFERS)"
    return validate(OffersInput, pd.read_csv(DEFAULT_OFFERS_FILE), table="offers", source=source), source


def rules(wh: WarehouseResource, offer_ids: pd.Series) -> RuleSet:
    """Every version of the rule: the bank's table, else the recipe's CASE as version 1."""
    if wh.table_exists(RULES_SOURCE):
        return rules_from_frame(_read_all(wh, RULES_SOURCE), source=RULES_SOURCE, offer_ids=offer_ids)
    source = f"default: {DEFAULT_RULES_FILE.name} (the recipe's CASE)"
    return rules_from_frame(pd.read_csv(DEFAULT_RULES_FILE), source=source, offer_ids=offer_ids)


def digest(wh: WarehouseResource) -> str:
    """A short digest of the offers and rules sources (the defaults' files when absent):
    it changes exactly when someone edits either table."""
    parts = []
    for table, default in ((OFFERS_SOURCE, DEFAULT_OFFERS_FILE), (RULES_SOURCE, DEFAULT_RULES_FILE)):
        if wh.table_exists(table):
            df = _read_all(wh, table)
            df = df[sorted(df.columns)].sort_values(sorted(df.columns), ignore_index=True)
            parts.append(df.to_csv(index=False))
        else:
            parts.append(default.read_text())
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def events(wh: WarehouseResource, where: str) -> pd.DataFrame:
    """Activity events matching `where`, in activity_id order. The column types are checked
    too: PROPENSITY_TO_BUY held as text ('0.5') is refused, as the stream refuses it (the
    recipe's DOUBLE), never converted."""
    return read(wh, ActivityInput, ACTIVITY_SOURCE, where, order_by="activity_id", check_types=True)


def customer_versions(wh: WarehouseResource, parties_sql: str) -> pd.DataFrame:
    """Every version of the customers whose party_id is in the subquery `parties_sql`."""
    if not wh.table_exists(CUSTOMERS_SOURCE):
        return coerce_types(CustomersInput, pd.DataFrame(columns=list(CustomersInput.to_schema().columns)))
    return read(wh, CustomersInput, CUSTOMERS_SOURCE, f"party_id IN ({parties_sql})", order_by="party_id, valid_from")
