{#
  changes: customers ranked by either side, and those whose top 1 or top 3 (as a set of
  products) the challenger changed. One row: customers, top1_changed, top3_changed.
  live, challenger: the week's top 3 (party_id, product_id, rank) of each side.
#}
WITH live AS (
    SELECT party_id, product_id, rank FROM {{ live }} l
),
challenger AS (
    SELECT party_id, product_id, rank FROM {{ challenger }} c
),
customers AS (
    SELECT party_id FROM live
    UNION
    SELECT party_id FROM challenger
),
live_top1 AS (
    SELECT party_id, product_id FROM live WHERE rank = 1
),
challenger_top1 AS (
    SELECT party_id, product_id FROM challenger WHERE rank = 1
),
top1_changed AS (
    SELECT coalesce(l.party_id, c.party_id) AS party_id
    FROM live_top1 l
    FULL OUTER JOIN challenger_top1 c ON c.party_id = l.party_id
    WHERE l.product_id IS NULL OR c.product_id IS NULL OR l.product_id <> c.product_id
),
top3_changed AS (
    SELECT DISTINCT coalesce(l.party_id, c.party_id) AS party_id
    FROM live l
    FULL OUTER JOIN challenger c ON c.party_id = l.party_id AND c.product_id = l.product_id
    WHERE l.party_id IS NULL OR c.party_id IS NULL
)
SELECT
    (SELECT count(*) FROM customers) AS customers,
    (SELECT count(*) FROM top1_changed) AS top1_changed,
    (SELECT count(*) FROM top3_changed) AS top3_changed
