{#
  suitability_rules: the suitability rule of each product class that has one, as an inline
  VALUES relation (product_class, health_below, penalty).

  rows: (product_class, health_below, penalty) per ruled class (at least one).
#}
(SELECT * FROM (VALUES
    {% for product_class, health_below, penalty in rows %}
    ({{ lit(product_class) }}, {{ dbl(health_below) }}, {{ dbl(penalty) }}){{ "," if not loop.last }}
    {% endfor %}
) AS r(product_class, health_below, penalty))
