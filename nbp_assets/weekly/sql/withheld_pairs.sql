{#
  withheld_pairs: the why-not record (nbp_work.withheld), one row per candidate (party,
  product) pair the suitability rule suppressed this week: party_id, product_id,
  product_class, rule (the setting that withheld it: suitability_health_below when the
  health was below the class's threshold, suitability_when_unknown when it was unknown),
  financial_health_score (the MOD-040 score as delivered, NULL when unknown), health_below
  (the class's threshold, financial health = score / 100) and reason (a fixed phrase per
  rule). Bounded by the withheld pairs: a pair the customer already holds, or that the gate
  dropped, is not here.

  r, c: as signals.sql (`r.parties` restricts it to one party shard).
#}
{% import "weekly/sql/_signal_inputs.sql" as inputs %}
SELECT party_id, product_id, product_class, rule, health_score AS financial_health_score, health_below,
       CASE rule
           WHEN 'suitability_when_unknown' THEN {{ lit(reasons.unknown) }}
           ELSE {{ lit(reasons.below) }}
       END AS reason
FROM (
WITH
{{ inputs.ctes(r, c) }}
{{ inputs.withheld_pairs(r, c) }}
) w
