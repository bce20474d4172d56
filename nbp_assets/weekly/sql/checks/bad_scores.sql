{#
  bad_scores (check scores_in_range): scores outside [0, 1], not at 6 decimals, or rising with
  rank within a party. Each rank meets the one above it by a join, not a window: DuckDB sorts
  a window's rows on one thread, and the week's top 3 are tens of millions of rows at 10M
  customers.

  ranked: the week's top 3 (party_id, rank, score); top_n: the largest rank.
#}
SELECT r.party_id, r.rank, r.score, p.score AS previous_score
FROM {{ ranked }} r
LEFT JOIN (SELECT party_id, rank, score FROM {{ ranked }} x WHERE rank < {{ top_n | int }}) p
    ON p.party_id = r.party_id AND p.rank = r.rank - 1
WHERE r.score < 0 OR r.score > 1
   OR abs(r.score * 1000000.0e0 - round(r.score * 1000000.0e0)) > 1.0e-6
   OR r.score > p.score
