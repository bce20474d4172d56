{#
  slice: the rows of `table` matching `where` (a week's slice), as a relation.
  table; where: a predicate; columns: the select list.
#}
(SELECT {{ columns }} FROM {{ table }} WHERE {{ where }})
