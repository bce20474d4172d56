{#
  movement: per product, how many customers have it in their top 3 and at rank 1, live
  and with the challenger, in product order.
  live, challenger: the week's top 3 (party_id, product_id, rank) of each side.
#}
WITH both_sides AS (
    SELECT product_id, rank, 1 AS live, 0 AS challenger FROM {{ live }} l
    UNION ALL
    SELECT product_id, rank, 0 AS live, 1 AS challenger FROM {{ challenger }} c
)
SELECT
    product_id,
    sum(live) AS live_top3,
    sum(challenger) AS challenger_top3,
    sum(CASE WHEN rank = 1 THEN live ELSE 0 END) AS live_top1,
    sum(CASE WHEN rank = 1 THEN challenger ELSE 0 END) AS challenger_top1
FROM both_sides
GROUP BY product_id
ORDER BY product_id
