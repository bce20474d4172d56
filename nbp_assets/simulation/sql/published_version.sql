{#
  published_version: the model_version the live model published the week with.
  ranked: the week's slice of the history.
#}
SELECT min(model_version) FROM {{ ranked }} h
