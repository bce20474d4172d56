{#
  behind_lookup: the batches with an offer row missing from the lookup (a step that died).
  offers: the next_best_offer table; lookup: the lookup table (none when absent).
#}
{% import "offers/sql/_state.sql" as state %}
SELECT DISTINCT o.BATCH_KEY FROM {{ offers }} o WHERE {{ state.missing_from_lookup(lookup) }}
