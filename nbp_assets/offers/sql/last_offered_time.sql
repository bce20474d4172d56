{#
  last_offered_time: the latest EVENT_TIME offered (t), null when nothing is.
  offers: the next_best_offer table.
#}
SELECT max(EVENT_TIME) AS t FROM {{ offers }}
