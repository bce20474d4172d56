"""Fairness monitoring (MOD-107, CON-001 / CON-006), in one folder: change the rule here.

- contract: what the fairness_report table promises, and which customer columns it may
  be cut by.
- maths: the rule itself on counts: rates with Wilson intervals, the gap between the
  highest and lowest judged group, its split into eligibility and ranking, the breach
  threshold and minimum group size, and what a breach is "attributable to".
- config: what is judged (NBP_FAIRNESS_*: dimensions, minimum group size, weeks of
  history, whether a breach stops nbp_current), with its defaults.
- guard: that stop, as nbp_current applies it before publishing.
- alert: what an nbp.fairness_breach alert carries to compliance and how it reads.
- report: the weekly review report (markdown and chart for the UI, standalone HTML).
- asset: the fairness_report asset and its check, wiring the above together.
Delivery of the alerts (outbox, channels, workflow) is the alerts package's. See docs/fairness.md.
"""
