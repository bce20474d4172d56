{#
  suppressed_pairs: one row, how many candidate pairs the suitability rule suppressed
  (pairs_suppressed_unsuitable), those it withheld because the health was unknown
  (pairs_withheld_unknown_health) and the customers concerned (parties_unknown_health_withheld):
  the rows withheld_pairs.sql writes, counted (_signal_inputs.sql withheld_pairs).

  r, c: as signals.sql.
#}
{% import "weekly/sql/_signal_inputs.sql" as inputs %}
WITH
{{ inputs.ctes(r, c) }}
SELECT count(*) AS pairs_suppressed_unsuitable,
       count(CASE WHEN s.health_score IS NULL THEN 1 END) AS pairs_withheld_unknown_health,
       count(DISTINCT CASE WHEN s.health_score IS NULL THEN s.party_id END) AS parties_unknown_health_withheld
FROM (
    {{ inputs.withheld_pairs(r, c) }}
) s
