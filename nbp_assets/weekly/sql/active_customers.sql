{#
  active_customers: the week's active customers as a relation.
  table: the customers table; week: the predicate of its week slice; active: the status;
  columns: the select list.
#}
(SELECT {{ columns }} FROM {{ table }} WHERE {{ week }} AND status = {{ lit(active) }})
