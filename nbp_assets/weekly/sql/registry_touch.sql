{#
  registry_touch: a week ranked by the model_version, in the week's own transaction: the
  first and last week it ranked (a backfill of an older week moves first_week back), when it
  first and last ran, the SQL digest of its first and of its latest run.

  table: product_intelligence.model_versions; model_version; week (date); run_at (datetime);
  sql_digest.
#}
UPDATE {{ table }} SET
    first_week = CASE WHEN first_week IS NULL OR first_week > {{ timestamp(week) }}
        THEN {{ timestamp(week) }} ELSE first_week END,
    last_week = CASE WHEN last_week IS NULL OR last_week < {{ timestamp(week) }}
        THEN {{ timestamp(week) }} ELSE last_week END,
    first_run_at = coalesce(first_run_at, {{ timestamp(run_at) }}),
    last_run_at = {{ timestamp(run_at) }},
    sql_digest = coalesce(sql_digest, {{ lit(sql_digest) }}),
    last_sql_digest = {{ lit(sql_digest) }}
WHERE model_version = {{ lit(model_version) }}
