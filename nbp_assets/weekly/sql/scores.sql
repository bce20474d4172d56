{#
  scores: every candidate's score, primary_signal and the explanation of the score: each
  lifting signal's contribution (weight x signal) and each penalty's factor
  (1 - weight x signal), the exact doubles the score is computed from:

      score = round6(clip01(min(1, contributions summed left to right) x factors))

  primary_signal is the lifting signal with the largest contribution, the first in
  `positive` order on a tie, `no_signal` when nothing lifts the product.

  signals: the week's signals (party_id, product_id, one column per signal).
  products: the week's register (product_id, product_class).
  weights: the weights relation (weights_values.sql): product_class, w_<signal>.
  positive, penalties: the lifting and the penalty signals, in order.
  contribution, factor: the output column name of a contribution / a factor.
  no_signal: primary_signal when nothing lifts the score.
  model_version: when given, a last column model_version.
#}
{% set ns = namespace(terms=[], factors=[], contributions=[]) %}
{% for s in positive %}
{% set ns.terms = ns.terms + ["c_" ~ s] %}
{% endfor %}
{% for s in penalties %}
{% set ns.factors = ns.factors + ["f_" ~ s] %}
{% endfor %}
{% set largest = "greatest(" ~ (ns.terms | join(", ")) ~ ")" %}
WITH contributions AS (
    SELECT
        s.party_id,
        s.product_id,
        {% for s in positive %}
        w.w_{{ s }} * s.{{ s }} AS c_{{ s }},
        {% endfor %}
        {% for s in penalties %}
        (1.0e0 - w.w_{{ s }} * s.{{ s }}) AS f_{{ s }}{{ "," if not loop.last }}
        {% endfor %}
    FROM {{ signals }} s
    JOIN {{ products }} p ON p.product_id = s.product_id
    JOIN {{ weights }} w ON w.product_class = p.product_class
)
SELECT
    party_id,
    product_id,
    {{ round6(clip01("least(" ~ sum_left_to_right(ns.terms) ~ ", 1.0e0) * " ~ (ns.factors | join(" * "))))
    }} AS score,
    CASE WHEN {{ largest }} > 0.0e0 THEN CASE
        {% for s in positive %}
        WHEN c_{{ s }} = {{ largest }} THEN {{ lit(s) }}
        {% endfor %}
    END ELSE {{ lit(no_signal) }} END AS primary_signal,
    {% for s in positive %}
    c_{{ s }} AS {{ contribution(s) }},
    {% endfor %}
    {% for s in penalties %}
    f_{{ s }} AS {{ factor(s) }}{{ "," if not loop.last or model_version is not none }}
    {% endfor %}
    {% if model_version is not none %}
    {{ lit(model_version) }} AS model_version
    {% endif %}
FROM contributions
