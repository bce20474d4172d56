{#
  within: `relation` restricted to the rows matching `predicate` (a party shard), all of it
  when predicate is None.
#}
{{ within(relation, predicate) }}
