{#
  select: the `columns` of `relation` (a table or a parenthesised subquery), optionally
  filtered, grouped, ordered and limited. For the small reads around a model (metadata,
  previews, counts), not for a model itself.
#}
SELECT {{ columns }} FROM {{ relation }} r
{% if where is defined and where is not none %}
WHERE {{ where }}
{% endif %}
{% if group_by is defined and group_by is not none %}
GROUP BY {{ group_by }}
{% endif %}
{% if order_by is defined and order_by is not none %}
ORDER BY {{ order_by }}
{% endif %}
{% if limit is defined and limit is not none %}
LIMIT {{ limit | int }}
{% endif %}
