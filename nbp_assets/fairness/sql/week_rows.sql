{#
  week_rows: a week's stored report rows (one per product, dimension and group).
  report: the fairness report table; columns: the select list; week_start: the week's Monday.
#}
SELECT {{ columns }}
FROM {{ report }}
WHERE week_start = {{ day(week_start) }}
