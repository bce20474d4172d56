{#
  exclusions_by_product: the signals step's per-product account of the candidates that are not
  ranked, one row per product of the week's register: excluded_as_held (an ELIGIBLE pair the
  customer already holds), withheld_health_below and withheld_when_unknown (the suitability
  rule's why-not rows, by rule). Set-based: a semi-join and two aggregates.

  products: the week's register (product_id); candidates: the week's gate (party_id,
  product_id); holdings: the open holdings at the evaluation date (party_id, product_id,
  possibly several rows per pair); withheld: the week's why-not rows (product_id, rule).
#}
SELECT pr.product_id,
       coalesce(h.held, 0) AS excluded_as_held,
       coalesce(w.below, 0) AS withheld_health_below,
       coalesce(w.unknown, 0) AS withheld_when_unknown
FROM (SELECT DISTINCT product_id FROM {{ products }} p) pr
LEFT JOIN (
    SELECT k.product_id, count(*) AS held FROM {{ candidates }} k
    WHERE EXISTS (
        SELECT 1 FROM {{ holdings }} x WHERE x.party_id = k.party_id AND x.product_id = k.product_id
    )
    GROUP BY k.product_id
) h ON h.product_id = pr.product_id
LEFT JOIN (
    SELECT product_id,
           count(CASE WHEN rule = 'suitability_health_below' THEN 1 END) AS below,
           count(CASE WHEN rule = 'suitability_when_unknown' THEN 1 END) AS unknown
    FROM {{ withheld }} x
    GROUP BY product_id
) w ON w.product_id = pr.product_id
ORDER BY pr.product_id
