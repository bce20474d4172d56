{#
  control_arms: product_id, arm, offered, accepted: the week's offers to customers ranked in
  the week whose top 3 was current (the previous week's history), split into the customers
  held out that week (`held_out`: in its control_group) and the others (`treated`), per
  product and over all products (`all_products`). Both arms are customers the model ranked,
  drawn by the same hash: the difference is whether the apps saw the ranking.
  offers: the offers_made query; ranked: that week's history slice (held-out rows included);
  control: that week's control_group slice.
#}
WITH ranked_parties AS (
    SELECT DISTINCT party_id FROM {{ ranked }} r
),

armed AS (
    SELECT
        o.product_id,
        o.outcome,
        CASE WHEN g.party_id IS NULL THEN 'treated' ELSE 'held_out' END AS arm
    FROM ({{ offers }}) o
    JOIN ranked_parties p ON p.party_id = o.party_id
    LEFT JOIN {{ control }} g ON g.party_id = o.party_id
)

SELECT
    CASE WHEN GROUPING(product_id) = 0 THEN product_id ELSE {{ lit(all_products) }} END AS product_id,
    arm,
    count(*) AS offered,
    count(CASE WHEN outcome = 'ACCEPTED' THEN 1 END) AS accepted
FROM armed
GROUP BY GROUPING SETS ((product_id, arm), (arm))
