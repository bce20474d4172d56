{#
  outside_eligibility_count: how many rows outside_eligibility.sql returns, computed as
  recommendations minus those found among the eligible pairs: an inner join lets the engine
  hash the smaller side (the top 3), where the anti-join hashes all eligible pairs.

  ranked, eligible: as outside_eligibility.sql (one party shard of them).
#}
SELECT (SELECT count(*) FROM {{ ranked }} r)
     - (SELECT count(*) FROM {{ ranked }} r
        JOIN {{ eligible }} e ON e.party_id = r.party_id AND e.product_id = r.product_id)
