{#
  insert_select: append the rows of `select` to `table`, in the table's column order.
  table; columns: the table's columns; values: the columns taken from `select` (in order);
  week_start: when given, the first column's value (the week's start).
#}
INSERT INTO {{ table }} ({{ columns | join(", ") }})
{% set week = timestamp(week_start) ~ " AS week_start, " if week_start is not none else "" %}
SELECT {{ week }}{{ values | join(", ") }} FROM (
{{ select }}
) q
