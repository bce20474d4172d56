{#
  recommended_counts: per product and combination of group values, the active customers
  with the product in their top 3. count(*): a product appears at most once in a
  customer's top 3 (ranks_1_to_n, blocking).
  ranked: the week's top 3 (party_id, product_id), the history's or a challenger's;
  customers, active, dimensions: as in active_counts.sql.
#}
{% set dims = "c." ~ (dimensions | join(", c.")) %}
WITH active AS (
    SELECT * FROM {{ customers }} c WHERE status = {{ lit(active) }}
)
SELECT r.product_id, {{ dims }}, count(*) AS recommended
FROM {{ ranked }} r
JOIN active c ON c.party_id = r.party_id
GROUP BY r.product_id, {{ dims }}
