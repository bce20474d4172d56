{#
  outside_eligibility (check eligibility_gate): recommendations of a product the party is not
  ELIGIBLE for (CON-006). No row: the invariant holds.

  ranked: the week's top 3 (party_id, rank, product_id); eligible: the week's eligible pairs.
#}
SELECT r.party_id, r.rank, r.product_id FROM {{ ranked }} r
WHERE NOT EXISTS (
    SELECT 1 FROM {{ eligible }} e WHERE e.party_id = r.party_id AND e.product_id = r.product_id
)
