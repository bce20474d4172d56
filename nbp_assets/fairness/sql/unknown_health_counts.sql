{#
  unknown_health_counts: per combination of group values, the active customers the
  suitability rule withheld at least one product from because their MOD-040 health was
  unknown this week (rule suitability_when_unknown: treated as not suitable), each
  counted once.
  withheld, customers: the work tables; week_start: the week's Monday; active: the
  status counted; rule: the withheld rule counted; dimensions: as in eligible_counts.sql.
#}
{% set dims = "c." ~ (dimensions | join(", c.")) %}
SELECT {{ dims }}, count(DISTINCT w.party_id) AS unknown_health
FROM {{ withheld }} w
JOIN {{ customers }} c ON c.party_id = w.party_id AND c.week_start = w.week_start
WHERE w.week_start = {{ day(week_start) }} AND c.status = {{ lit(active) }} AND w.rule = {{ lit(rule) }}
GROUP BY {{ dims }}
