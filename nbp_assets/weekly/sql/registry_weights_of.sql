{#
  registry_weights_of: the weights rows of one model_version, long format, in a stable order.

  table: product_intelligence.model_weights; model_version.
#}
SELECT product_class, signal, weight FROM {{ table }} w
WHERE w.model_version = {{ lit(model_version) }}
ORDER BY product_class, signal
