{#
  suppressed_pairs: one row, how many candidate pairs the suitability rule suppressed
  (pairs_suppressed_unsuitable). Only the inputs the rule reads are joined, not the signals,
  so counting costs a fraction of the signals.

  r, c: as signals.sql.

  The rule first, the holdings after: the anti-join then runs on the few suppressed pairs.
  The GROUP BY (a no-op: candidate pairs are unique) keeps it that way, as an engine does not
  reorder joins across an aggregate; without it DuckDB anti-joined all ~10M candidates first
  (1.0 CPU s at 1M customers, for ~100k suppressed pairs). The candidates are active
  customers already, and the rule reads only the MOD-040 health: churn alone is joined, not
  the party row's four inputs (a party without a MOD-040 row is not known to be in
  difficulty, and the inner join drops it as the rule would).
#}
{% import "weekly/sql/_signal_inputs.sql" as inputs %}
{% set by_rule %}
(SELECT k.party_id, k.product_id
    FROM {{ within(r.candidates, r.parties) }} k
    JOIN (SELECT party_id, {{ inputs.health(c) }} AS financial_health FROM churn ch) a
        ON a.party_id = k.party_id
    JOIN products p ON p.product_id = k.product_id
    WHERE {{ inputs.suppressed(c) }}
    GROUP BY k.party_id, k.product_id)
{%- endset %}
WITH
{{ inputs.ctes(r, c) }}
SELECT count(*) AS pairs_suppressed_unsuitable
FROM (
    {{ inputs.not_held(by_rule, r) }}
) s
