{#
  backlog: ready (events a batch would offer now), pending (events waiting for a customer
  record), lookup_gap (offer rows not yet in the lookup).
  activity: the landed events; offers, customers, lookup: relations, none when absent.
#}
{% import "offers/sql/_state.sql" as state %}
SELECT
    (SELECT count(*) FROM {{ activity }} a WHERE {{ state.not_offered(offers) }} AND {{ state.known(customers) }}) AS ready,
    (SELECT count(*) FROM {{ activity }} a WHERE {{ state.not_offered(offers) }} AND NOT {{ state.known(customers) }}) AS pending,
{% if offers is none %}
    0 AS lookup_gap
{% else %}
    (SELECT count(*) FROM {{ offers }} o WHERE {{ state.missing_from_lookup(lookup) }}) AS lookup_gap
{% endif %}
