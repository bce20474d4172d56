{#
  gate_exclusions_by_product: the eligibility step's per-product count of the MOD-105
  snapshot's pairs of the week's active customers that the CON-006 gate dropped
  (excluded_by_gate: not ELIGIBLE, or the product not in the week's register). Products
  without such a pair have no row.

  snapshot: the MOD-105 snapshot in force (party_id, product_id, eligibility_status);
  customers: the week's customers (party_id, status); products: the week's register
  (product_id); active, eligible: the status values that pass.
#}
SELECT e.product_id, count(*) AS excluded_by_gate
FROM {{ snapshot }} e
WHERE e.party_id IN (SELECT party_id FROM {{ customers }} c WHERE status = {{ lit(active) }})
  AND NOT (e.eligibility_status = {{ lit(eligible) }}
           AND e.product_id IN (SELECT product_id FROM {{ products }} p))
GROUP BY e.product_id
ORDER BY e.product_id
