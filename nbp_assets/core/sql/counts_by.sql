{#
  counts_by: rows of `relation` per value of `by` (optionally only those matching `where`),
  in order of `by`: small metadata counts (by status, by primary_signal, ...).
#}
SELECT {{ by }}, count(*) FROM {{ relation }} r
{% if where is not none %}
WHERE {{ where }}
{% endif %}
GROUP BY {{ by }}
ORDER BY {{ by }}
