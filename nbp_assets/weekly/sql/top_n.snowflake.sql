{#
  top_n (Snowflake): each customer's top_n products by score descending, ties by product_id
  ascending, with a row_number() window over each customer's candidates.

  scores: party_id, product_id, score, primary_signal.
  customers: the active customers (party_id, jurisdiction).
  model_version, evaluated_at, top_n: the rows' constants.
  ordered: rows in key order (party_id, rank).
  products, primary, product_bits, signal_bits: read by the DuckDB spelling only.
#}
{% import "weekly/sql/_top_n.sql" as top %}
{% if ordered %}
SELECT * FROM (
{% endif %}
WITH ranked AS (
    SELECT
        s.party_id,
        s.product_id,
        s.score,
        s.primary_signal,
        row_number() OVER (PARTITION BY s.party_id ORDER BY s.score DESC, s.product_id ASC) AS rank
    FROM {{ scores }} s
)
{{ top.published(customers, model_version, evaluated_at, top_n) }}
{% if ordered %}
) t ORDER BY party_id, rank
{% endif %}
