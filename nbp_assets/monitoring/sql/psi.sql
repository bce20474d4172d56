{#
  psi: one row per (baseline, metric): the population stability index of each signal and of
  the score, this week against each baseline week, over fixed equal-width bins of [0, 1].
  PSI = sum over bins of (a - e) x ln(a / e), a and e the shares of this week's and the
  baseline's values in the bin; an empty bin's share counts as `epsilon` (ln 0 is undefined).
  now_signals, now_scores: this week's slices; baselines: {name: (signals, scores)}, each
  baseline's slices; names: the signal columns; bins: the number of bins; epsilon: the
  share an empty bin counts as. NULL values are left out; a metric with no value on one
  side has no row.
#}
{% set sides = [("now", now_signals, now_scores)] %}
{% for name, rel in baselines.items() %}{% set _ = sides.append((name, rel[0], rel[1])) %}{% endfor %}
-- Aggregated to bins in the warehouse: one pass over each slice (GROUPING SETS, one set per
-- metric), at most bins rows per side and metric leave it, whatever the number of pairs.
WITH binned AS (
    {% for side, signals, scores in sides %}
    SELECT
        {{ lit(side) }} AS side,
        {% for s in names %}
        least(CAST(floor(s.{{ s }} * {{ bins }}) AS INTEGER), {{ bins - 1 }}) AS b{{ loop.index0 }},
        {% endfor %}
        CAST(NULL AS INTEGER) AS b_score
    FROM {{ signals }} s
    UNION ALL
    SELECT
        {{ lit(side) }} AS side,
        {% for s in names %}
        CAST(NULL AS INTEGER) AS b{{ loop.index0 }},
        {% endfor %}
        least(CAST(floor(c.score * {{ bins }}) AS INTEGER), {{ bins - 1 }}) AS b_score
    FROM {{ scores }} c
    {{ "UNION ALL" if not loop.last }}
    {% endfor %}
),
grouped AS (
    SELECT
        side,
        CASE
            {% for s in names %}
            WHEN GROUPING(b{{ loop.index0 }}) = 0 THEN {{ lit(s) }}
            {% endfor %}
            ELSE 'score'
        END AS metric,
        CASE
            {% for s in names %}
            WHEN GROUPING(b{{ loop.index0 }}) = 0 THEN b{{ loop.index0 }}
            {% endfor %}
            ELSE b_score
        END AS bin,
        count(*) AS n
    FROM binned
    GROUP BY GROUPING SETS ({% for s in names %}(side, b{{ loop.index0 }}), {% endfor %}(side, b_score))
),
counts AS (SELECT side, metric, bin, n FROM grouped WHERE bin IS NOT NULL),
totals AS (SELECT side, metric, sum(n) AS total FROM counts GROUP BY side, metric),
grid AS (
    SELECT m.metric, b.bin
    FROM
        (VALUES
            {%- for s in names + ["score"] %} ({{ lit(s) }}){{ "," if not loop.last }}{% endfor %}
        ) AS m(metric),
        (VALUES {% for b in range(bins) %}({{ b }}){{ ", " if not loop.last }}{% endfor %}) AS b(bin)
),
shares AS (
    SELECT
        tb.side AS baseline,
        g.metric,
        tn.total AS n_now,
        tb.total AS n_baseline,
        greatest(CAST(coalesce(cn.n, 0) AS DOUBLE) / CAST(tn.total AS DOUBLE), {{ dbl(epsilon) }}) AS a,
        greatest(CAST(coalesce(cb.n, 0) AS DOUBLE) / CAST(tb.total AS DOUBLE), {{ dbl(epsilon) }}) AS e
    FROM grid g
    JOIN totals tn ON tn.side = 'now' AND tn.metric = g.metric
    JOIN totals tb ON tb.side <> 'now' AND tb.metric = g.metric
    LEFT JOIN counts cn ON cn.side = 'now' AND cn.metric = g.metric AND cn.bin = g.bin
    LEFT JOIN counts cb ON cb.side = tb.side AND cb.metric = g.metric AND cb.bin = g.bin
)

SELECT baseline, metric, min(n_now) AS n_now, min(n_baseline) AS n_baseline, sum((a - e) * ln(a / e)) AS psi
FROM shares
GROUP BY baseline, metric
