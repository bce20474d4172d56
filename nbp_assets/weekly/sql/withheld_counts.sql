{#
  withheld_counts: one row for the signals step's metadata, from the week's why-not record:
  the pairs withheld, per rule, and the customers withheld a product because their health was
  unknown (parties_unknown). withheld: the week's nbp_work.withheld rows.
#}
SELECT count(*) AS pairs,
       count(CASE WHEN rule = 'suitability_health_below' THEN 1 END) AS health_below,
       count(CASE WHEN rule = 'suitability_when_unknown' THEN 1 END) AS when_unknown,
       count(DISTINCT CASE WHEN rule = 'suitability_when_unknown' THEN party_id END) AS parties_unknown
FROM {{ withheld }} w
