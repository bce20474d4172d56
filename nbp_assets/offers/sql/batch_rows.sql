{#
  batch_rows: the `columns` of the offer rows batch `batch_key` wrote.
  offers: the next_best_offer table; columns: list of column names.
#}
SELECT {{ columns | join(", ") }} FROM {{ offers }} WHERE BATCH_KEY = {{ lit(batch_key) }}
