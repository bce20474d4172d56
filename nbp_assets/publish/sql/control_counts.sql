{#
  control_counts: customers of the week's history (ranked) and how many of them are held out.
  history: the week's history slice; control: the week's control_group slice.
#}
SELECT
    count(*) AS ranked_customers,
    count(g.party_id) AS held_out_ranked
FROM (SELECT DISTINCT party_id FROM {{ history }} h) r
LEFT JOIN {{ control }} g ON g.party_id = r.party_id
