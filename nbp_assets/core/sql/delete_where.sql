{#
  delete_where: remove the rows of `table` matching `where` (a week's slice before it is
  written again, in the same transaction).
#}
DELETE FROM {{ table }} WHERE {{ where }}
