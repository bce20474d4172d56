{#
  registry_delete_weights: the weights rows of one model_version (rewritten with the same
  values: a model_version names exactly one configuration, its digest).

  table: product_intelligence.model_weights; model_version.
#}
DELETE FROM {{ table }} WHERE model_version = {{ lit(model_version) }}
