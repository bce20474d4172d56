{#
  no_ranking: the columns of a published top 3 with no row, for a warehouse where no week
  was ever published (every offer is then not_recommended).
#}
(
    SELECT
        CAST(NULL AS VARCHAR) AS party_id,
        CAST(NULL AS VARCHAR) AS product_id,
        0 AS rank,
        CAST(NULL AS VARCHAR) AS primary_signal,
        CAST(NULL AS VARCHAR) AS model_version
    WHERE 1 = 0
)
