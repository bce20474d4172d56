{#
  signal_report: one row, the active parties without a churn, behaviour or ROTE row (their
  values are never NULL by contract, so a NULL after the outer join means no row).

  r, c: as signals.sql.
#}
{% import "weekly/sql/_signal_inputs.sql" as inputs %}
WITH
{{ inputs.ctes(r, c) }}
SELECT
    count(CASE WHEN churn_probability IS NULL THEN 1 END) AS parties_without_churn,
    count(CASE WHEN monthly_spend IS NULL THEN 1 END) AS parties_without_behaviour,
    count(CASE WHEN customer_rote IS NULL THEN 1 END) AS parties_without_rote
FROM party
