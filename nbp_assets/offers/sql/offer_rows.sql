{#
  offer_rows: every offer row of the batches `batch_keys`, in ACTIVITY_ID order.
  offers: the next_best_offer table.
#}
{% import "offers/sql/_state.sql" as state %}
SELECT * FROM {{ offers }} WHERE {{ state.batch_in(batch_keys) }} ORDER BY ACTIVITY_ID
