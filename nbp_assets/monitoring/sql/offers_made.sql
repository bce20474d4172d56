{#
  offers_made: one row per offer made in the week (offered in [week_start, the evaluation
  date)): its outcome as known at the evaluation date (PENDING when decided later or not
  yet), the recommendation it followed (rank, primary_signal, model_version of the top 3
  current during the week) or `not_recommended`, and the customer's fairness groups.
  offers: the offers (MOD-108 offer_history); ranked: the top 3 published at the week's
  start; customers: the week's customers; week_start, evaluation_date: the week's bounds;
  dimensions: the fairness dimensions (customer columns); not_recommended: the label of an
  offer outside the top 3. (party_id: who was offered, for the control group's arms.)
#}
SELECT
    o.offer_id,
    o.party_id,
    o.product_id,
    CASE
        WHEN o.outcome_at IS NOT NULL AND o.outcome_at < {{ timestamp(evaluation_date) }} THEN o.outcome
        ELSE 'PENDING'
    END AS outcome,
    coalesce(CAST(r.rank AS VARCHAR), {{ lit(not_recommended) }}) AS rank,
    coalesce(r.primary_signal, {{ lit(not_recommended) }}) AS primary_signal,
    coalesce(r.model_version, {{ lit(not_recommended) }}) AS model_version
    {%- for d in dimensions %},
    c.{{ d }}
    {%- endfor %}

FROM {{ offers }} o
LEFT JOIN {{ ranked }} r ON r.party_id = o.party_id AND r.product_id = o.product_id
JOIN {{ customers }} c ON c.party_id = o.party_id
WHERE o.offered_at >= {{ timestamp(week_start) }} AND o.offered_at < {{ timestamp(evaluation_date) }}
