{#
  week_rows: the week's top 3 as nbp_current receives them, in storage order (which
  nbp_ranked made the key's order: PostgreSQL builds the key's index from presorted rows much
  faster, and sorting here would sort the whole week again, 13.5 s at 10M).
  history: the history table; week: the predicate of the week's slice.
  control (optional, a control group is on): salt and threshold of the hold-out; the held-out
  customers (the same hash as control_group.sql) are left out by a filter, not a join, so
  the storage order stays.
#}
{% from "publish/sql/_control.sql" import control_md5, control_bucket %}
SELECT party_id, jurisdiction, CAST(rank AS INTEGER) AS rank, product_id, CAST(score AS DOUBLE) AS score,
       primary_signal, model_version, evaluated_at
{% if control is defined and control %}
FROM (
    SELECT h.*, {{ control_md5(control.salt, "party_id") }} AS control_digest
    FROM {{ history }} h
    WHERE {{ week }}
) h
WHERE {{ control_bucket("control_digest") }} >= {{ control.threshold }}
{% else %}
FROM {{ history }}
WHERE {{ week }}
{% endif %}
