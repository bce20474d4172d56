{#
  earlier_gaps: the gaps the report stores for the weeks from `first` up to (not
  including) `week_start`: the trend of the last weeks.
  report: the fairness report table; first, week_start: dates.
#}
SELECT DISTINCT week_start, product_id, dimension, gap_pp, breach
FROM {{ report }}
WHERE week_start >= {{ day(first) }} AND week_start < {{ day(week_start) }}
