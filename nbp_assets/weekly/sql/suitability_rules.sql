{#
  suitability_rules: the suitability rule of each product class that has one, as an inline
  VALUES relation (product_class, health_below, penalty, when_unknown).

  rows: (product_class, health_below, penalty, when_unknown) per ruled class (at least one).
#}
(SELECT * FROM (VALUES
    {% for product_class, health_below, penalty, when_unknown in rows %}
    ({{ lit(product_class) }}, {{ dbl(health_below) }}, {{ dbl(penalty) }},
     {{ dbl(when_unknown) }}){{ "," if not loop.last }}
    {% endfor %}
) AS r(product_class, health_below, penalty, when_unknown))
