{#
  first_seen: the batch that first saw each pending event.
  pending: the next_best_offer_pending table.
#}
SELECT ACTIVITY_ID, FIRST_SEEN_BATCH FROM {{ pending }}
