{#
  eligible_counts: per product and combination of group values, the active customers
  ELIGIBLE for the product this week (CON-006), counted in the warehouse instead of
  reading every eligible pair.
  eligibility, customers: the work tables; week_start: the week's Monday; active: the
  status counted; dimensions: the customer columns (validated names; an
  intersection's two columns among them).
#}
{% set dims = "c." ~ (dimensions | join(", c.")) %}
SELECT e.product_id, {{ dims }}, count(*) AS eligible
FROM {{ eligibility }} e
JOIN {{ customers }} c ON c.party_id = e.party_id AND c.week_start = e.week_start
WHERE e.week_start = {{ day(week_start) }} AND c.status = {{ lit(active) }}
GROUP BY e.product_id, {{ dims }}
