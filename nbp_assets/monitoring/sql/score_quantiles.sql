{#
  score_quantiles: one row, score_p10, score_p50, score_p90 (one column per quantile),
  exactly the engines' percentile_cont, read off the score's histogram (_score_quantiles.sql).
  scores: the week's scores; quantiles: the quantiles, in (0, 1).
#}
{% import "monitoring/sql/_score_quantiles.sql" as q %}
WITH
{{ q.ctes(scores, quantiles) }}

SELECT
    {{ q.picks(quantiles) | trim | indent(4) }}
FROM picked
