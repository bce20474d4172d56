{#
  registry_insert_weights: every weight and suitability setting of one model_version, in the
  weights file's long format, as the exact doubles its digest covers.

  table: product_intelligence.model_weights; model_version; rows: (product_class, signal, weight).
#}
INSERT INTO {{ table }} (model_version, product_class, signal, weight) VALUES
{% for product_class, signal, weight in rows %}
    ({{ lit(model_version) }}, {{ lit(product_class) }}, {{ lit(signal) }}, {{ dbl(weight) }})
    {{- "," if not loop.last }}
{% endfor %}
