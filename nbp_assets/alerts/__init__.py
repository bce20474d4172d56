"""Alert delivery: the PostgreSQL outbox, the channels and the workflow on top of them.

What a fairness alert says and when it is raised is the fairness folder's
(nbp_assets/fairness/); this package keeps it, delivers it and lets people act on it.

- outbox, schema: the PostgreSQL tables compliance queries: every nbp.fairness_breach
  alert (one per product, dimension and model_version, with the weeks it breached), its
  delivery per channel and an append-only audit trail; schema creates and migrates them.
- workflow, cli: compliance acknowledges, assigns, comments on and resolves alerts
  (`python -m nbp_assets alerts ...`), every action in the audit trail.
- ops, ops_sensors: operations alerts (failed runs and blocking checks, a week not
  published by Monday 09:00 London), to the same channels.
- messages, channels: how an alert is worded per channel, and local Maildir / e-mail /
  webhook / Slack / Teams delivery.
- delivery, sensor: the sensor that delivers pending alerts with back-off and reports
  undelivered ones; resource: the channels' configuration.
See docs/fairness.md.
"""
