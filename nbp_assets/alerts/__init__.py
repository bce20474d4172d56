"""Fairness monitoring that compliance acts on (MOD-107, CON-001 / CON-006).

- config: which dimensions are judged, minimum group size, history window, and whether
  a breach blocks publishing nbp_current (environment variables, read at load); guard:
  that block, as nbp_current applies it.
- outbox, schema: the PostgreSQL tables compliance queries: every nbp.fairness_breach
  alert (one per product, dimension and model_version, with the weeks it breached), its
  delivery per channel and an append-only audit trail; schema creates and migrates them.
- workflow, cli: compliance acknowledges, assigns, comments on and resolves alerts
  (`python -m nbp_assets alerts ...`), every action in the audit trail.
- ops, ops_sensors: operations alerts (failed runs and blocking checks, a week not
  published by Monday 09:00 London), to the same channels.
- messages, channels: what an alert says, and local Maildir / e-mail / webhook / Slack /
  Teams delivery.
- delivery, sensor: the sensor that delivers pending alerts with back-off and reports
  undelivered ones; resource: the channels' configuration.
- report: the weekly review report (markdown and chart for the UI, standalone HTML).
See docs/fairness.md.
"""
