{#
  not_empty (check week_not_empty): one row when the week has no recommendation (an empty week
  never replaces history). rows: the week's rows; active: its active customers; pairs: its
  eligible pairs.
#}
SELECT {{ active | int }} AS active_customers, {{ pairs | int }} AS eligible_pairs WHERE {{ rows | int }} = 0
