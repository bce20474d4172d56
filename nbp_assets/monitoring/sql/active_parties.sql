{#
  active_parties: the party_id of the week's active customers, as a relation.
  customers: the week's customers; active: the active status.
#}
(SELECT party_id FROM {{ customers }} c WHERE status = {{ lit(active) }})
