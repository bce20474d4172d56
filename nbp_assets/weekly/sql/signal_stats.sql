{#
  signal_stats: one row for the signals step's metadata: each signal's mean, the pairs in
  cooling-off and the pairs the suitability rule down-weighted.
  signals: the week's signals; names: the signal columns.
#}
SELECT
    {% for s in names %}
    avg({{ s }}) AS {{ s }},
    {% endfor %}
    count(CASE WHEN cooling_off > 0 THEN 1 END) AS cooling,
    count(CASE WHEN suitability > 0 THEN 1 END) AS down_weighted
FROM {{ signals }} s
