"""The CON-006 gate: only products MOD-105 marks ELIGIBLE, for active customers, are ranked."""

from __future__ import annotations

import pandas as pd

ACTIVE = "ACTIVE"
ELIGIBLE = "ELIGIBLE"


def active_customers(customers: pd.DataFrame) -> pd.DataFrame:
    """Customers whose status is ACTIVE in the week: the population NBP serves."""
    return customers.loc[customers["status"] == ACTIVE].reset_index(drop=True)


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
