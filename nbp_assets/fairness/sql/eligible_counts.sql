{#
  eligible_counts: per product and combination of group values, the active customers
  ELIGIBLE for the product this week (CON-006), counted in the warehouse instead of
  reading every eligible pair; with `withheld`, also how many of those pairs the
  suitability rule withheld (nbp_work.withheld), in the same scan: the eligible minus the
  withheld are the suitable.
  eligibility, customers: the work tables; withheld: the why-not table (none: a week
  from before it, no withheld column); week_start: the week's Monday; active: the
  status counted; dimensions: the customer columns (validated names; an
  intersection's two columns among them).
#}
{% set dims = "c." ~ (dimensions | join(", c.")) %}
SELECT e.product_id, {{ dims }},
       count(*) AS eligible{% if withheld %}, count(w.party_id) AS withheld{% endif +%}
FROM {{ eligibility }} e
JOIN {{ customers }} c ON c.party_id = e.party_id AND c.week_start = e.week_start
{% if withheld %}
LEFT JOIN {{ withheld }} w
  ON w.party_id = e.party_id AND w.product_id = e.product_id AND w.week_start = e.week_start
{% endif %}
WHERE e.week_start = {{ day(week_start) }} AND c.status = {{ lit(active) }}
GROUP BY e.product_id, {{ dims }}
