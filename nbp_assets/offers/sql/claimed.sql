{#
  claimed: predicate on the activity table, the events batch `batch_key` claimed.
  claims: the claims table.
#}
{% import "offers/sql/_state.sql" as state %}
{{ state.claimed_by(claims, batch_key) }}
