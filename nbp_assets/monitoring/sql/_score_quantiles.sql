{#
  _score_quantiles: the score's quantiles read off its histogram, exactly the engines'
  percentile_cont (linear interpolation between the ranks around q x (n - 1)); shared by
  score_quantiles.sql and drift_metrics.sql (imported, not a model of its own).
  ctes(scores, quantiles): the CTEs histogram, cumulative, ranks, picked;
  picks(quantiles): the select list score_p10, score_p50, ... over `picked`.
#}
{% macro ctes(scores, quantiles) -%}
-- A score has 6 decimals in [0, 1]: at most 1,000,001 distinct values whatever the number
-- of pairs, where percentile_cont keeps every value in memory (95M doubles at 10M
-- customers: more than DuckDB's 1 GB, and it cannot spill).
histogram AS (SELECT score, count(*) AS n FROM {{ scores }} s GROUP BY score),
cumulative AS (
    SELECT score, sum(n) OVER (ORDER BY score ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto
    FROM histogram
),
ranks AS (
    SELECT q, pos, floor(pos) AS lo, ceil(pos) AS hi
    FROM (
        SELECT qs.q, qs.q * CAST(t.total - 1 AS DOUBLE) AS pos
        FROM
            (SELECT sum(n) AS total FROM histogram) t,
            (VALUES {% for q in quantiles %}({{ dbl(q) }}){{ ", " if not loop.last }}{% endfor %}) AS qs(q)
    ) r
),
-- the value at 0-based rank k is the smallest score whose cumulative count exceeds k
picked AS (
    SELECT r.q, r.pos, r.lo,
           min(CASE WHEN c.upto > r.lo THEN c.score END) AS v_lo,
           min(CASE WHEN c.upto > r.hi THEN c.score END) AS v_hi
    FROM ranks r CROSS JOIN cumulative c
    GROUP BY r.q, r.pos, r.lo
)
{%- endmacro %}

{% macro picks(quantiles) -%}
{% for q in quantiles %}
max(CASE WHEN q = {{ dbl(q) }} THEN v_lo + (pos - lo) * (v_hi - v_lo) END) AS score_p{{ (q * 100) | int }}
{{- "," if not loop.last }}
{% endfor %}
{%- endmacro %}
