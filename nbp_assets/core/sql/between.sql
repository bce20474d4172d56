{#
  between: a predicate on `column` for the range [lo, hi) of string keys (None: unbounded).
#}
{% set bounds = [] %}
{% if lo is not none %}{% set bounds = bounds + [column ~ " >= " ~ lit(lo)] %}{% endif %}
{% if hi is not none %}{% set bounds = bounds + [column ~ " < " ~ lit(hi)] %}{% endif %}
{{ bounds | join(" AND ") }}
