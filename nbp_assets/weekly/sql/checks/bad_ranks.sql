{#
  bad_ranks (check ranks_1_to_n): parties whose ranks are not exactly 1..n with n <= top_n,
  or that repeat a product. For n <= 3 ranks in [1, n] are exactly {1..n} when their sum and
  sum of squares match 1..n's: cheaper than counting distinct ranks per party.

  ranked: the week's top 3 (party_id, rank, product_id); top_n: at most this many per party.
#}
SELECT party_id, 'ranks are not 1..n with n <= {{ top_n | int }}' AS problem FROM {{ ranked }}
GROUP BY party_id
HAVING count(*) > {{ top_n | int }} OR min(rank) <> 1 OR max(rank) <> count(*)
    OR sum(rank) <> count(*) * (count(*) + 1) / 2
    OR sum(rank * rank) <> count(*) * (count(*) + 1) * (2 * count(*) + 1) / 6
UNION ALL
SELECT party_id, 'product ' || product_id || ' twice' AS problem FROM {{ ranked }}
GROUP BY party_id, product_id
HAVING count(*) > 1
