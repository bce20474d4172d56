{#
  ready_events: up to `limit` landed events with no offer row whose customer has a record,
  oldest activity_id first.
  activity, offers, customers: relations (offers/customers none when absent); limit: int.
#}
{% import "offers/sql/_state.sql" as state %}
SELECT DISTINCT activity_id AS ACTIVITY_ID FROM (
    SELECT a.activity_id FROM {{ activity }} a
    WHERE {{ state.not_offered(offers) }} AND {{ state.known(customers) }}
    ORDER BY a.activity_id LIMIT {{ limit | int }}
) AS ready
