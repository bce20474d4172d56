{#
  registry_unjoined: history rows whose model_version has no registry row (0 when every
  week is tied to its configuration).

  history: product_intelligence.next_best_product; table: product_intelligence.model_versions.
#}
SELECT count(*) AS n FROM {{ history }} h
WHERE NOT EXISTS (SELECT 1 FROM {{ table }} m WHERE m.model_version = h.model_version)
