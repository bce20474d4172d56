"""Fairness monitoring that compliance acts on (MOD-107, CON-001 / CON-006).

- config: which dimensions are judged, minimum group size, history window, and whether
  a breach blocks publishing nbp_current (environment variables, read at load); guard:
  that block, as nbp_current applies it.
- outbox: the PostgreSQL tables compliance queries: every nbp.fairness_breach alert,
  its delivery per channel and an append-only audit trail.
- messages, channels: what an alert says, and e-mail / webhook / Slack / Teams delivery.
- delivery, sensor: the sensor that delivers pending alerts with back-off and reports
  undelivered ones; resource: the channels' configuration.
- report: the weekly review report (markdown and chart for the UI, standalone HTML).
See docs/fairness.md.
"""
