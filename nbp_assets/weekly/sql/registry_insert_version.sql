{#
  registry_insert_version: the model_version's registry row, if it has none yet (its weeks,
  runs and approval are set by registry_touch / registry_approve). Portable: no MERGE.

  table: product_intelligence.model_versions; model_version, code_version, weights_digest.
#}
INSERT INTO {{ table }} (model_version, code_version, weights_digest)
SELECT {{ lit(model_version) }}, {{ lit(code_version) }}, {{ lit(weights_digest) }}
FROM (SELECT 1 AS one) s
WHERE NOT EXISTS (SELECT 1 FROM {{ table }} m WHERE m.model_version = {{ lit(model_version) }})
