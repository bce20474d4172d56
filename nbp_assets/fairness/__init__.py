"""Fairness monitoring (MOD-107, CON-001 / CON-006), in one folder: change the rule here.

- contract: what the fairness_report table promises, and which customer columns it may
  be cut by.
- maths: the rule itself on counts: rates with Wilson intervals, the gap between the
  highest and lowest judged group, its split into eligibility and ranking, the breach
  threshold and minimum group size, and what a breach is "attributable to".
- config: what is judged (NBP_FAIRNESS_*: dimensions, minimum group size, weeks of
  history, whether a breach stops nbp_current), with its defaults.
- compute: the week's counts from the warehouse (sql/*.sql), the maths applied: rates,
  gaps and the report rows.
- record: the contract gate, the report rows written (and an older table widened), the
  stored rows and the last weeks' gaps read back.
- breaches: the week's breaches, from its stored rows.
- guard: that stop, as nbp_current applies it before publishing.
- alert: what an nbp.fairness_breach alert carries to compliance and how it reads; the
  week's alerts recorded in the outbox.
- report: the weekly review report (markdown and chart for the UI, standalone HTML).
- review: the HTML file, the UI's metadata, refreshing the later weeks' reports.
- asset: the fairness_report asset and its check, one step wiring the above together.
Delivery of the alerts (outbox, channels, workflow) is the alerts package's. See docs/fairness.md.
"""
