{#
  later_weeks: the weeks the report holds after `after` and before `before`, in order:
  the reports a (re-)evaluated week changes (their trend and alerts).
  report: the fairness report table; after, before: dates.
#}
SELECT DISTINCT week_start
FROM {{ report }}
WHERE week_start > {{ day(after) }} AND week_start < {{ day(before) }}
ORDER BY week_start
