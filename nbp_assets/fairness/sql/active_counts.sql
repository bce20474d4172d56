{#
  active_counts: the week's active customers per combination of group values (one row
  each, a few thousand at most), summed per dimension in fairness/compute.py.
  customers: the week's customers (a relation); active: the status counted;
  dimensions: the customer columns the groups are cut by (validated names; an
  intersection's two columns among them, its groups summed from these rows).
#}
{% set dims = "c." ~ (dimensions | join(", c.")) %}
WITH active AS (
    SELECT * FROM {{ customers }} c WHERE status = {{ lit(active) }}
)
SELECT {{ dims }}, count(*) AS customers
FROM active c
GROUP BY {{ dims }}
