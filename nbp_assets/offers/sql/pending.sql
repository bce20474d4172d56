{#
  pending: predicate on the activity table, the landed events with no offer row whose
  customer has no record at all.
  activity, offers, customers: relations (offers/customers none when absent).
#}
{% import "offers/sql/_state.sql" as state %}
activity_id IN (
    SELECT a.activity_id FROM {{ activity }} a
    WHERE {{ state.not_offered(offers) }} AND NOT {{ state.known(customers) }}
)
