{#
  drift_metrics: one row of one week: each signal's mean (mean_<signal>), the score's
  quantiles (score_p10, ...), the active customers without an eligible product and all
  active customers.
  signals, scores, eligible: the week's signals, scores and eligible pairs; active: the
  week's active customers (party_id); names: the signal columns; quantiles: the score's
  quantiles.
#}
{% import "monitoring/sql/_score_quantiles.sql" as q %}
-- One scan of each 10M-row table, not one per metric.
WITH
{{ q.ctes(scores, quantiles) }},
quantiles AS (
    SELECT
        {{ q.picks(quantiles) | trim | indent(8) }}
    FROM picked
),
means AS (
    SELECT
        {% for s in names %}
        avg({{ s }}) AS mean_{{ s }}{{ "," if not loop.last }}
        {% endfor %}
    FROM {{ signals }} s
)

-- The customers without an eligible product are counted as all minus those with one: a
-- semi-join hashes the ~1M customers, where NOT EXISTS hashed the ~10M eligible pairs
-- (0.16 s against 0.6-1.2 s at 1M).
SELECT
    m.*,
    q.*,
    (SELECT count(*) FROM {{ active }} a)
    - (SELECT count(*) FROM {{ active }} a WHERE a.party_id IN (SELECT e.party_id FROM {{ eligible }} e))
    AS without_eligible,
    (SELECT count(*) FROM {{ active }} a) AS active_customers
FROM means m, quantiles q
