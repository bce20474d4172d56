"""The CON-006 gate: only products MOD-105 marks ELIGIBLE, for active customers, are ranked
(the SQL: weekly/sql/eligible_pairs.sql)."""

from __future__ import annotations

from datetime import date

from nbp_assets.core.sql import render

ACTIVE = "ACTIVE"
ELIGIBLE = "ELIGIBLE"


def eligible_pairs_sql(snapshot: str, customers: str, products: str, snapshot_date: date | None = None) -> str:
    """(party_id, product_id) pairs that may be recommended this week (preceded by
    snapshot_date when given: the eligibility table's rows).

    A pair passes only if MOD-105 says ELIGIBLE, the party is active and the product is in
    the product register: anything else can never appear in a recommendation.
    """
    return render(
        "weekly",
        "eligible_pairs",
        snapshot=snapshot,
        customers=customers,
        products=products,
        eligible=ELIGIBLE,
        active=ACTIVE,
        snapshot_date=snapshot_date,
    ).text
