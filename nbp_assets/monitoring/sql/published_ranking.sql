{#
  published_ranking: the top 3 the apps saw, as a relation: the week's history rows less the
  customers held out that week (nbp_work.control_group), whose ranking was stored, not
  published. An offer to a held-out customer therefore counts as not_recommended.
  ranked: the week's history slice; control: that week's control_group slice.
#}
(
    SELECT r.*
    FROM {{ ranked }} r
    WHERE NOT EXISTS (SELECT 1 FROM {{ control }} g WHERE g.party_id = r.party_id)
)
