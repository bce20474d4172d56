{#
  batch_key_is: predicate, the rows of batch `batch_key` (BATCH_KEY column).
#}
BATCH_KEY = {{ lit(batch_key) }}
