"""The CON-006 gate: only products MOD-105 marks ELIGIBLE, for active customers, are ranked."""

from __future__ import annotations

from nbp_assets.core.sqltext import lit

ACTIVE = "ACTIVE"
ELIGIBLE = "ELIGIBLE"


def eligible_pairs_sql(snapshot: str, customers: str, products: str) -> str:
    """(party_id, product_id) pairs that may be recommended this week.

    A pair passes only if MOD-105 says ELIGIBLE, the party is active and the product is in
    the product register: anything else can never appear in a recommendation.
    """
    return f"""SELECT e.party_id, e.product_id
FROM {snapshot} e
WHERE e.eligibility_status = {lit(ELIGIBLE)}
  AND e.party_id IN (SELECT party_id FROM {customers} WHERE status = {lit(ACTIVE)})
  AND e.product_id IN (SELECT product_id FROM {products})"""
