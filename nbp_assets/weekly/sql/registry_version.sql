{#
  registry_version: the registry row of one model_version (none if it never ran nor was approved).

  table: product_intelligence.model_versions; model_version.
#}
SELECT * FROM {{ table }} m WHERE m.model_version = {{ lit(model_version) }}
