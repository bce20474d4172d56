{#
  The last step of top_n.<engine>.sql: the `ranked` rows in the seed's next_best_product
  shape, for ranks up to top_n (imported, not a model of its own).
#}
{% macro published(customers, model_version, evaluated_at, top_n) -%}
SELECT
    r.party_id,
    c.jurisdiction,
    CAST(r.rank AS INTEGER) AS rank,
    r.product_id,
    r.score,
    r.primary_signal,
    {{ lit(model_version) }} AS model_version,
    {{ timestamp(evaluated_at) }} AS evaluated_at
FROM ranked r
JOIN {{ customers }} c ON c.party_id = r.party_id
WHERE r.rank <= {{ top_n | int }}
{%- endmacro %}
