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
{% if not withheld %}
SELECT e.product_id, {{ dims }}, count(*) AS eligible
FROM {{ eligibility }} e
JOIN {{ customers }} c ON c.party_id = e.party_id AND c.week_start = e.week_start
WHERE e.week_start = {{ day(week_start) }} AND c.status = {{ lit(active) }}
GROUP BY e.product_id, {{ dims }}
{% else %}
-- The withheld pairs are eligible pairs of active customers: counted from their own small
-- table and joined to the grouped counts, not by joining the ~10M eligible pairs to them
-- (that join cost ~4 s of a 1M-customer week).
WITH eligible AS (
    SELECT e.product_id, {{ dims }}, count(*) AS eligible
    FROM {{ eligibility }} e
    JOIN {{ customers }} c ON c.party_id = e.party_id AND c.week_start = e.week_start
    WHERE e.week_start = {{ day(week_start) }} AND c.status = {{ lit(active) }}
    GROUP BY e.product_id, {{ dims }}
),
withheld AS (
    SELECT w.product_id, {{ dims }}, count(*) AS withheld
    FROM {{ withheld }} w
    JOIN {{ customers }} c ON c.party_id = w.party_id AND c.week_start = w.week_start
    WHERE w.week_start = {{ day(week_start) }} AND c.status = {{ lit(active) }}
    GROUP BY w.product_id, {{ dims }}
)
SELECT g.*, coalesce(h.withheld, 0) AS withheld
FROM eligible g
LEFT JOIN withheld h
  ON h.product_id = g.product_id
{% for d in dimensions %}
  AND h.{{ d }} IS NOT DISTINCT FROM g.{{ d }}
{% endfor %}
{% endif %}
