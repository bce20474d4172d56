{#
  approval_week: one row, model_version (this week's scores') and approval_week: the week
  the model_version was approved. Until the model registry records approvals, that is the
  first week the model_version scored (the earliest week_start of nbp_work.scores with it,
  this week's at the latest): monitoring/assets.py approval_baseline_week is the one place
  to change.
  scores: all weeks' scores; now_scores: this week's slice; week_start: this week's Monday.
#}
WITH this AS (SELECT min(n.model_version) AS model_version FROM {{ now_scores }} n)

SELECT
    this.model_version,
    (
        SELECT min(s.week_start)
        FROM {{ scores }} s
        WHERE s.model_version = this.model_version AND s.week_start <= {{ timestamp(week_start) }}
    ) AS approval_week
FROM this
