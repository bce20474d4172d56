"""Where nbp.fairness_breach alerts go: the channels' configuration, as a Dagster resource.

Read from the environment by settings.alert_channel_settings when the definitions load
(docs/fairness.md lists every variable); passwords, tokens and webhook URLs are passed as dg.EnvVar, so the UI shows
the variable's name, never its value. A channel is on when its first variable is set;
The local channel (a Maildir under $NBP_HOME) is on by default in the local deployment;
none at all = alerts stay in the outbox, and the sensor says so on every tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

import dagster as dg

from nbp_assets.alerts.channels import EmailChannel, MaildirChannel, SlackChannel, TeamsChannel, WebhookChannel
from nbp_assets.core import settings


class FairnessAlertsResource(dg.ConfigurableResource):
    """Delivery channels and retry policy of nbp.fairness_breach alerts (compliance team)
    and operations alerts (failed runs and checks, a week not published in time)."""

    maildir: Optional[str] = None  # the local channel: a Maildir folder on this machine
    smtp_host: Optional[str] = None
    smtp_port: Optional[int] = None
    smtp_security: str = "starttls"
    smtp_from: Optional[str] = None
    smtp_to: Optional[str] = None  # comma-separated
    smtp_user: Optional[str] = None
    smtp_password: Optional[str] = None
    webhook_url: Optional[str] = None
    webhook_secret: Optional[str] = None
    slack_token: Optional[str] = None
    slack_channel: Optional[str] = None
    slack_api_url: str = "https://slack.com/api/"
    teams_webhook_url: Optional[str] = None
    timeout_seconds: float = 10.0
    retry_base_seconds: float = 60.0  # first retry after this, doubling per failed attempt ...
    retry_max_seconds: float = 3600.0  # ... up to this

    def channels(self) -> dict:
        """The configured channels by name; a half-configured channel raises ValueError."""
        found: dict = {}
        if self.maildir:
            found["maildir"] = MaildirChannel(self.maildir)
        if self.smtp_host:
            recipients = [r.strip() for r in (self.smtp_to or "").split(",") if r.strip()]
            found["email"] = EmailChannel(
                self.smtp_host,
                self.smtp_port,
                self.smtp_from or "",
                recipients,
                self.smtp_security,
                self.smtp_user,
                self.smtp_password,
                self.timeout_seconds,
            )
        if self.webhook_url:
            found["webhook"] = WebhookChannel(self.webhook_url, self.webhook_secret, self.timeout_seconds)
        if self.slack_token:
            found["slack"] = SlackChannel(
                self.slack_token, self.slack_channel, self.slack_api_url, self.timeout_seconds
            )
        if self.teams_webhook_url:
            found["teams"] = TeamsChannel(self.teams_webhook_url, self.timeout_seconds)
        return found

    def secrets(self) -> list[str]:
        return [s for channel in self.channels().values() for s in channel.secrets if s]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "FairnessAlertsResource":
        plain, secret = settings.alert_channel_settings(environ)
        values: dict = {**plain, **{field: dg.EnvVar(var) for field, var in secret.items()}}
        maildir = settings.alert_maildir(environ)
        if maildir is not None:
            values["maildir"] = str(maildir)
        return cls(**values)
