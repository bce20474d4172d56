{#
  suppressed_published (check suitability): published recommendations the
  suitability rule suppresses: the product's class has a suppressing rule and the party's
  MOD-040 health (read from the snapshot itself, not from the signals the rule produced) is
  below its threshold, compared as delivered (score / scale, unrounded), or unknown (no
  snapshot row, or a NULL score) where the class fails closed (when_unknown 1).

  ranked: the week's top 3; health: the MOD-040 snapshot (party_id, financial_health_score);
  products: the week's register; rules: the suitability rules relation
  (suitability_rules.sql), or None (no rule: no row);
  health_scale: MOD-040's scale (100); suppress: the penalty that suppresses (1.0).
#}
{% if rules is none %}
SELECT party_id, rank, product_id FROM {{ ranked }} r WHERE 1 = 0
{% else %}
SELECT r.party_id, r.rank, r.product_id, p.product_class, h.financial_health_score, u.health_below
FROM {{ ranked }} r
JOIN {{ products }} p ON p.product_id = r.product_id
JOIN {{ rules }} u ON u.product_class = p.product_class
LEFT JOIN {{ health }} h ON h.party_id = r.party_id
WHERE u.penalty >= {{ dbl(suppress) }}
  AND CASE WHEN h.financial_health_score IS NULL THEN u.when_unknown >= 1.0e0
      ELSE h.financial_health_score / {{ dbl(health_scale) }} < u.health_below END
{% endif %}
