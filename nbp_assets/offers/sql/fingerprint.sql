{#
  fingerprint: cheap counts (metadata-only in Snowflake) that change whenever there may be
  work. activity, customers, offers, lookup: relations, none when absent (counted as 0).
#}
{% macro count(relation, what="count(*)") -%}
{% if relation is none %}0{% else %}(SELECT {{ what }} FROM {{ relation }}){% endif %}
{%- endmacro %}
SELECT
    {{ count(activity) }} AS landed,
    {{ count(activity, "coalesce(max(activity_id), 0)") }} AS max_id,
    {{ count(customers) }} AS customers,
    {{ count(offers) }} AS offered,
    {{ count(lookup) }} AS looked_up
