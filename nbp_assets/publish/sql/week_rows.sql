{#
  week_rows: the week's top 3 as nbp_current receives them, in storage order (which
  nbp_ranked made the key's order: PostgreSQL builds the key's index from presorted rows much
  faster, and sorting here would sort the whole week again, 13.5 s at 10M).
  history: the history table; week: the predicate of the week's slice.
#}
SELECT party_id, jurisdiction, CAST(rank AS INTEGER) AS rank, product_id, CAST(score AS DOUBLE) AS score,
       primary_signal, model_version, evaluated_at
FROM {{ history }}
WHERE {{ week }}
