{#
  shard_starts: the first party_id of every range of `size` parties after the first, in
  order (the party shards' bounds). parties: one row per party (party_id).
#}
SELECT party_id
FROM (SELECT party_id, row_number() OVER (ORDER BY party_id) AS n FROM {{ parties }} p) s
WHERE n > 1 AND (n - 1) % {{ size | int }} = 0
ORDER BY party_id
