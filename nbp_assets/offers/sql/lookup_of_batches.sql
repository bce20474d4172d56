{#
  lookup_of_batches: predicate on the lookup table, the rows of the batches `batch_keys`.
  offers: the next_best_offer table.
#}
{% import "offers/sql/_state.sql" as state %}
ACTIVITY_ID IN (SELECT ACTIVITY_ID FROM {{ offers }} WHERE {{ state.batch_in(batch_keys) }})
