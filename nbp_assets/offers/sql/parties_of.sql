{#
  parties_of: subquery, the customers of the events batch `batch_key` claimed.
  activity, claims: relations.
#}
{% import "offers/sql/_state.sql" as state %}
SELECT party_id FROM {{ activity }} WHERE {{ state.claimed_by(claims, batch_key) }}
