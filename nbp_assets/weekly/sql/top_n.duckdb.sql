{#
  top_n (DuckDB): each customer's top_n products by score descending, ties by product_id
  ascending, as top_n.snowflake.sql gives them, without a window.

  DuckDB's window sorts every candidate of the week on one thread (3.7 CPU s at 1M
  customers, most of the ranking step). Instead each candidate becomes one BIGINT that orders
  like (score DESC, product_id ASC) and carries its primary_signal, and a hash aggregate
  keeps each customer's top_n keys (max(key, n), parallel: 0.9 CPU s). The key, high bits
  first: the score in millionths (scores are 6 dp in [0, 1]: at most 2^20), the product's
  number in the register counted down (product_bits), the primary_signal's position
  (signal_bits).

  scores: party_id, product_id, score, primary_signal.
  customers: the active customers (party_id, jurisdiction).
  products: the week's register (product_id), numbering the products.
  primary: every primary_signal value, in key order (the lifting signals, then 'none').
  model_version, evaluated_at, top_n: the rows' constants.
  ordered: rows in key order (party_id, rank).
#}
{% import "weekly/sql/_top_n.sql" as top %}
{% set last = 2 ** product_bits - 1 %}
{% if ordered %}
SELECT * FROM (
{% endif %}
WITH products AS (
    SELECT product_id, {{ last }} - (row_number() OVER (ORDER BY product_id) - 1) AS countdown
    FROM (SELECT DISTINCT product_id FROM {{ products }} p) p
),
keyed AS (
    SELECT
        s.party_id,
        (CAST(round(s.score * 1000000.0e0) AS BIGINT) << {{ product_bits + signal_bits }})
            | (p.countdown << {{ signal_bits }})
            | CASE s.primary_signal
                {% for signal in primary %}
                WHEN {{ lit(signal) }} THEN {{ loop.index0 }}
                {% endfor %}
                ELSE error('primary_signal ' || s.primary_signal || ' is not a signal')
              END AS k
    FROM {{ scores }} s
    JOIN products p ON p.product_id = s.product_id
),
top AS (
    SELECT party_id, max(k, {{ top_n | int }}) AS ks FROM keyed GROUP BY party_id
),
ranked AS (
    SELECT
        t.party_id,
        p.product_id,
        -- round6 made every score an integer count of millionths divided by 1e6: the same double
        (t.k >> {{ product_bits + signal_bits }}) / 1000000.0e0 AS score,
        CASE t.k & {{ 2 ** signal_bits - 1 }}
            {% for signal in primary %}
            WHEN {{ loop.index0 }} THEN {{ lit(signal) }}
            {% endfor %}
        END AS primary_signal,
        t.rank
    FROM (SELECT party_id, unnest(ks) AS k, unnest(generate_series(1, len(ks))) AS rank FROM top) t
    JOIN products p ON p.countdown = (t.k >> {{ signal_bits }}) & {{ last }}
)
{{ top.published(customers, model_version, evaluated_at, top_n) }}
{% if ordered %}
) t ORDER BY party_id, rank
{% endif %}
