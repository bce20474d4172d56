{#
  publish_gate: the week's stored report for one model_version, one row per product and
  dimension with its gap and whether it breached (1 / 0): what NBP_FAIRNESS_BLOCKS_PUBLISH
  reads before nbp_current publishes (fairness/guard.py). No row: no report yet.
  report: the fairness report table; week_start: the week's Monday; model_version.
#}
SELECT product_id, dimension, max(gap_pp) AS gap_pp, max(CASE WHEN breach THEN 1 ELSE 0 END) AS breach
FROM {{ report }}
WHERE week_start = {{ day(week_start) }} AND model_version = {{ lit(model_version) }}
GROUP BY product_id, dimension
ORDER BY product_id, dimension
