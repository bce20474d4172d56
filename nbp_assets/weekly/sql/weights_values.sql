{#
  weights_values: the weights matrix as an inline VALUES relation, one row per product class:
  the exact doubles model_version names.

  rows: (product_class, [weight per signal, in `signals` order]) per class.
  signals: the signal names (vocabulary.ALL_SIGNALS); the columns are w_<signal>.
#}
(SELECT * FROM (VALUES
    {% for product_class, values in rows %}
    {% set row = namespace(weights=[]) %}
    {% for v in values %}{% set row.weights = row.weights + [dbl(v)] %}{% endfor %}
    ({{ lit(product_class) }}, {{ row.weights | join(", ") }}){{ "," if not loop.last }}
    {% endfor %}
) AS w(product_class, {% for s in signals %}w_{{ s }}{{ ", " if not loop.last }}{% endfor %}))
