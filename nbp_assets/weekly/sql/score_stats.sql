{#
  score_stats: one row for the scores step's metadata: the week's lowest, mean and highest
  score. scores: the week's scores.
#}
SELECT min(score) AS lo, avg(score) AS mean, max(score) AS hi FROM {{ scores }} s
