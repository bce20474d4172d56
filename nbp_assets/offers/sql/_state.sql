{#
  Predicates on the offer stream's state, shared by its queries. A relation passed as none
  is a table that does not exist yet (nothing offered, no customer, no lookup row).
  - not_offered(offers): the landed event (alias a) has no offer row.
  - known(customers): the event's customer (alias a) has a record.
  - claimed_by(claims, batch_key): activity_id is one of the events the batch claimed.
  - missing_from_lookup(lookup): the offer row (alias o) has no lookup row.
  - batch_in(batch_keys): BATCH_KEY is one of the batches.
#}
{% macro not_offered(offers) -%}
{% if offers is none %}TRUE{% else %}NOT EXISTS (SELECT 1 FROM {{ offers }} o WHERE o.ACTIVITY_ID = a.activity_id){% endif %}
{%- endmacro %}

{% macro known(customers) -%}
{% if customers is none %}FALSE{% else %}EXISTS (SELECT 1 FROM {{ customers }} c WHERE c.party_id = a.party_id){% endif %}
{%- endmacro %}

{% macro claimed_by(claims, batch_key) -%}
activity_id IN (SELECT ACTIVITY_ID FROM {{ claims }} WHERE BATCH_KEY = {{ lit(batch_key) }})
{%- endmacro %}

{% macro missing_from_lookup(lookup) -%}
{% if lookup is none %}TRUE{% else %}NOT EXISTS (SELECT 1 FROM {{ lookup }} l WHERE l.ACTIVITY_ID = o.ACTIVITY_ID){% endif %}
{%- endmacro %}

{% macro batch_in(batch_keys) -%}
BATCH_KEY IN ({% for key in batch_keys %}{{ lit(key) }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}
