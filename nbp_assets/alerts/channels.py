"""Delivery channels of alerts: a local Maildir, e-mail, webhook, Slack, Teams.

A channel's `send` returns when the receiver has accepted the alert and raises otherwise;
the outbox then keeps it pending and retries with back-off. Every message carries the
outbox's alert id (e-mail Message-ID, webhook Idempotency-Key) so a receiver can drop
the rare duplicate: a crash between "accepted" and "recorded as delivered" resends.
Error texts pass through `redact` before they are stored or logged: webhook URLs of
Slack and Teams embed their credentials, and HTTP libraries quote URLs in errors.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import smtplib
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlsplit

from nbp_assets.alerts import messages
from nbp_assets.alerts.outbox import ALERT_TYPE
from nbp_assets.core import redaction

SMTP_SECURITY = ("starttls", "ssl", "none")


class DeliveryError(RuntimeError):
    """The receiver answered, and did not accept the alert."""


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """A channel's error text without its secrets (nbp_assets.core.redaction; fragments under 4
    characters, such as a port, are left)."""
    return redaction.redact(text, secrets, min_length=4)


def _url_secrets(url: str | None) -> list[str]:
    if not url:
        return []
    parts = urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    return [url, tail, parts.path, parts.query, parts.password or ""]


def _describe_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/..."  # path may hold a token


def require_https(name: str, url: str) -> str:
    """Alerts name products and groups of the bank's customers: TLS, except to this machine."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{name}: not an http(s) URL: {_describe_url(url) if parts.hostname else '(unparseable)'}")
    if parts.scheme == "http":
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = parts.hostname == "localhost"
        if not loopback:
            raise ValueError(f"{name}: plain http is only allowed to this machine; use https ({_describe_url(url)})")
    return url


def alert_tag(alert: Mapping) -> str:
    """The alert's type and outbox id, e.g. nbp.fairness_breach.12: unique per alert."""
    return f"{alert.get('type') or ALERT_TYPE}.{alert.get('alert_id')}"


def email_message(alert: Mapping, sender: str, recipients: list[str]) -> EmailMessage:
    """The alert as an e-mail; its Message-ID is the alert's tag, so a duplicate is recognisable."""
    msg = EmailMessage()
    msg["Subject"] = messages.subject(alert)
    msg["From"], msg["To"] = sender, ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False)
    domain = sender.rpartition("@")[2] or "nbp.local"
    msg["Message-ID"] = f"<{alert_tag(alert)}@{domain}>"
    msg["X-NBP-Alert-Id"] = str(alert.get("alert_id"))
    msg["X-NBP-Alert-Type"] = alert.get("type") or ALERT_TYPE
    msg.set_content(messages.text(alert))
    return msg


class MaildirChannel:
    """Files each alert as an e-mail in a Maildir folder on this machine: it needs no
    server, so alerts reach someone out of the box. Any mail client reads the folder
    (`mutt -f DIR`, Thunderbird's maildir store), and each message is also a plain `.eml`
    file under DIR/new that opens with a double click. Filing is atomic (written to tmp/,
    renamed into new/) and happens once per alert: a message already in new/ or cur/
    (read) is not filed again."""

    name = "maildir"

    def __init__(self, path: str | Path, recipient: str = "compliance@localhost"):
        self.path, self.recipient = Path(path), recipient
        self.sender = f"nbp-alerts@{socket.gethostname() or 'localhost'}"
        self.secrets: list[str] = []

    def describe(self) -> str:
        return f"maildir {self.path}"

    def filed(self, alert: Mapping) -> list[Path]:
        tag = alert_tag(alert)
        return sorted(p for sub in ("new", "cur") for p in (self.path / sub).glob(f"*.{tag}.*"))

    def send(self, alert: Mapping) -> str | None:
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        already = self.filed(alert)
        if already:
            return f"already filed as {already[0]}"
        # Maildir's unique name (time.pid.host), with the tag inside it and .eml at the end.
        host = (socket.gethostname() or "localhost").replace("/", "_").replace(":", "_")
        name = f"{int(time.time())}.P{os.getpid()}.{alert_tag(alert)}.{host}.eml"
        tmp = self.path / "tmp" / name
        with open(tmp, "wb") as handle:
            handle.write(email_message(alert, self.sender, [self.recipient]).as_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, self.path / "new" / name)
        return None


class EmailChannel:
    name = "email"

    def __init__(
        self,
        host: str,
        port: int | None,
        sender: str,
        recipients: list[str],
        security: str = "starttls",
        user: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ):
        if security not in SMTP_SECURITY:
            raise ValueError(f"NBP_ALERT_SMTP_SECURITY={security!r}: expected one of {', '.join(SMTP_SECURITY)}")
        if not sender or not recipients:
            raise ValueError(
                "e-mail alerts need NBP_ALERT_SMTP_FROM and NBP_ALERT_SMTP_TO as well as NBP_ALERT_SMTP_HOST"
            )
        self.host, self.sender, self.recipients, self.security = host, sender, recipients, security
        self.port = port or {"starttls": 587, "ssl": 465, "none": 25}[security]
        self.user, self.password, self.timeout = user, password, timeout
        self.secrets = [password]

    def describe(self) -> str:
        return f"e-mail via {self.host}:{self.port} ({self.security}) to {', '.join(self.recipients)}"

    def build(self, alert: Mapping) -> EmailMessage:
        return email_message(alert, self.sender, self.recipients)

    def send(self, alert: Mapping) -> str | None:
        smtp_class = smtplib.SMTP_SSL if self.security == "ssl" else smtplib.SMTP
        kwargs = {"context": ssl.create_default_context()} if self.security == "ssl" else {}
        with smtp_class(self.host, self.port, timeout=self.timeout, **kwargs) as smtp:
            if self.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                smtp.login(self.user, self.password or "")
            refused = smtp.send_message(self.build(alert))  # raises when every recipient is refused
        return f"refused by {', '.join(refused)}" if refused else None


class WebhookChannel:
    name = "webhook"

    def __init__(self, url: str, secret: str | None = None, timeout: float = 10.0):
        self.url, self.secret, self.timeout = require_https("NBP_ALERT_WEBHOOK_URL", url), secret, timeout
        self.secrets = [*_url_secrets(url), secret]

    def describe(self) -> str:
        return f"webhook {_describe_url(self.url)}" + (" (signed)" if self.secret else "")

    def request(self, alert: Mapping) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(dict(alert), sort_keys=True, default=str).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "nbp-fairness-alerts/1",
            "X-NBP-Event": alert.get("type") or ALERT_TYPE,
            "Idempotency-Key": f"{alert.get('type') or ALERT_TYPE}-{alert.get('alert_id')}",
        }
        if self.secret:
            digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-NBP-Signature"] = f"sha256={digest}"
        return body, headers

    def send(self, alert: Mapping) -> None:
        import requests

        body, headers = self.request(alert)
        response = requests.post(self.url, data=body, headers=headers, timeout=self.timeout)
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"HTTP {response.status_code}: {response.text[:200]}")


class SlackChannel:
    """Posts with dagster-slack's SlackResource client (chat.postMessage, bot token)."""

    name = "slack"

    def __init__(self, token: str, channel: str | None, api_url: str = "https://slack.com/api/", timeout: float = 10.0):
        if not channel:
            raise ValueError("Slack alerts need NBP_ALERT_SLACK_CHANNEL as well as NBP_ALERT_SLACK_TOKEN")
        self.token, self.channel, self.timeout = token, channel, timeout
        self.api_url = require_https("NBP_ALERT_SLACK_API_URL", api_url)
        self.secrets = [token]

    def describe(self) -> str:
        return f"Slack channel {self.channel} via {_describe_url(self.api_url)}"

    def send(self, alert: Mapping) -> None:
        from dagster_slack import SlackResource

        client = SlackResource(token=self.token).get_client()
        client.base_url = self.api_url if self.api_url.endswith("/") else f"{self.api_url}/"
        client.timeout = int(max(1, self.timeout))
        client.chat_postMessage(channel=self.channel, text=messages.subject(alert), blocks=messages.slack_blocks(alert))


class TeamsChannel:
    """Posts with dagster-msteams' MSTeamsResource client to an incoming webhook."""

    name = "teams"

    def __init__(self, hook_url: str, timeout: float = 10.0):
        self.hook_url, self.timeout = require_https("NBP_ALERT_TEAMS_WEBHOOK_URL", hook_url), timeout
        self.secrets = _url_secrets(hook_url)

    def describe(self) -> str:
        return f"Teams webhook {_describe_url(self.hook_url)}"

    def send(self, alert: Mapping) -> None:
        from dagster_msteams import MSTeamsResource

        client = MSTeamsResource(hook_url=self.hook_url, timeout=self.timeout).get_client()
        client.post_message(messages.teams_payload(alert, legacy=client.is_legacy_webhook()))
