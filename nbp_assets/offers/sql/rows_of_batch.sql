{#
  rows_of_batch: predicate on next_best_offer, the rows batch `batch_key` replaces: its own
  and those of any event it claimed.
  claims: the claims table.
#}
BATCH_KEY = {{ lit(batch_key) }} OR ACTIVITY_ID IN (SELECT ACTIVITY_ID FROM {{ claims }} WHERE BATCH_KEY = {{ lit(batch_key) }})
