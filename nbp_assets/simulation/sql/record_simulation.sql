{#
  record_simulation: one challenger simulation, kept for good (the sandbox is overwritten by
  the next one; this row is not).

  table: product_intelligence.simulations; row: (column, kind, value) in the table's column
  order, kind one of text, int, float, timestamp.
#}
INSERT INTO {{ table }} (
    {%- for column, kind, value in row %}{{ column }}{{ ", " if not loop.last }}{% endfor -%}
)
VALUES (
{% for column, kind, value in row %}
    {% if kind == "text" %}
    {{ lit(value) }}
    {%- elif kind == "float" %}
    {{ dbl(value) }}
    {%- elif kind == "timestamp" %}
    {{ timestamp(value) }}
    {%- else %}
    {{ value | int }}
    {%- endif %}
    {{- "," if not loop.last }}
{% endfor %}
)
