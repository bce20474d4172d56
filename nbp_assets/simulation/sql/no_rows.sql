{#
  no_rows: the columns of `relation` and none of its rows: empties the sandbox's signals of
  the week when the challenger reuses the live signals (an earlier simulation's signals
  must not pass for this one's).
#}
SELECT * FROM {{ relation }} s WHERE 1 = 0
