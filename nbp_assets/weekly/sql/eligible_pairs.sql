{#
  eligible_pairs: the CON-006 gate, the (party_id, product_id) pairs that may be recommended
  this week. A pair passes only if MOD-105 says ELIGIBLE, the party is active and the product
  is in the product register: anything else can never appear in a recommendation.

  snapshot: the MOD-105 snapshot in force (party_id, product_id, eligibility_status).
  customers: the week's customers (party_id, status); products: the week's register.
  eligible, active: the status values that pass.
  snapshot_date: when given, the rows start with it (the eligibility table's shape).
#}
{% if snapshot_date is not none %}
SELECT {{ timestamp(snapshot_date) }} AS snapshot_date, party_id, product_id FROM (
{% endif %}
SELECT e.party_id, e.product_id
FROM {{ snapshot }} e
WHERE e.eligibility_status = {{ lit(eligible) }}
  AND e.party_id IN (SELECT party_id FROM {{ customers }} WHERE status = {{ lit(active) }})
  AND e.product_id IN (SELECT product_id FROM {{ products }})
{% if snapshot_date is not none %}
) g
{% endif %}
