"""nbp.fairness_breach alerts: outbox, delivery and the sensor, against real receivers.

A real SMTP server (aiosmtpd) and a real HTTP server (http.server) run on 127.0.0.1; the
webhook, Slack (dagster-slack's client, its API base URL pointed at the local server) and
Teams (dagster-msteams' client, an incoming-webhook URL on the local server) post to it.
Teams' legacy Office 365 connector format is only checked as a payload: its URLs must be
*.webhook.office.com, which cannot be served here. The outbox is a real PostgreSQL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import date, datetime, timedelta, timezone
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from nbp_assets.alerts import messages, outbox
from nbp_assets.alerts.channels import EmailChannel, SlackChannel, WebhookChannel
from nbp_assets.alerts.delivery import backoff_seconds, deliver_due
from nbp_assets.alerts.resource import FairnessAlertsResource
from nbp_assets.alerts.sensor import SENSOR_NAME, nbp_fairness_alert_sensor
from nbp_assets.core.postgres_resource import PostgresResource
from nbp_assets.definitions import build_definitions
from nbp_assets.fairness.alert import alert_payload
from nbp_assets_tests.test_fairness_report import (  # noqa: F401  fixtures: clean_compliance, env, defs
    BIASED_LIFT,
    RANKING_WEEK,
    clean_compliance,
    defs,
    env,
    ranking_bias_pairs,
    run_report,
    weights_frame,
    write_week,
)

pytestmark = pytest.mark.integration

SIGNING_KEY = "whsec-0123456789"
SLACK_TOKEN = "xoxb-test-0123456789"


# ---------------------------------------------------------------------------- receivers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler: keeps what it accepts; `reply` set = every message refused with it."""

    def __init__(self):
        self.messages: list = []
        self.reply: str | None = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self.reply:
            return self.reply
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 2.0.0 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    inbox.port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


class Receiver:
    """What the local HTTP server was sent, and how it answers (status, body, delay)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        self.delay = 0.0
        self.lock = threading.Lock()

    def body(self, path: str) -> bytes:
        if path.startswith("/api/"):  # Slack Web API answers JSON with "ok"
            return json.dumps(
                {
                    "ok": self.status == 200,
                    "channel": "C0COMPLIANCE",
                    "ts": "1.2",
                    **({} if self.status == 200 else {"error": "channel_not_found"}),
                }
            ).encode()
        return b"1" if self.status == 200 else b"unavailable"

    def posted(self, prefix: str) -> list[dict]:
        return [r for r in self.requests if r["path"].startswith(prefix)]


@pytest.fixture
def hook():
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(state.delay)
            with state.lock:
                state.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body, "status": state.status}
                )
            reply = state.body(self.path)
            # Slack's API always answers 200 and says "ok": false; a web hook answers with its status.
            self.send_response(200 if self.path.startswith("/api/") else state.status)
            self.send_header("Content-Type", "application/json" if self.path.startswith("/api/") else "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def channels_to(smtp: Inbox | None = None, hook: Receiver | None = None, **extra) -> FairnessAlertsResource:
    config: dict = {}
    if smtp:
        config |= {
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_security": "none",
            "smtp_from": "nbp-alerts@bank.example",
            "smtp_to": "compliance@bank.example, model-risk@bank.example",
        }
    if hook:
        config |= {
            "webhook_url": f"{hook.url}/hooks/fairness",
            "webhook_secret": SIGNING_KEY,
            "slack_token": SLACK_TOKEN,
            "slack_channel": "#compliance-alerts",
            "slack_api_url": f"{hook.url}/api/",
            "teams_webhook_url": f"{hook.url}/teams/incoming",
        }
    return FairnessAlertsResource(**(config | extra))


class Sensor:
    """Ticks the sensor like the daemon does: the cursor of one tick is given to the next."""

    def __init__(self, url: str, channels: FairnessAlertsResource, tmp_path):
        self.url, self.channels, self.cursor = url, channels, None
        self.postgres = PostgresResource(url=url, data_dir=str(tmp_path / "unused"))
        self.instance = dg.DagsterInstance.ephemeral()

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"postgres": self.postgres, "fairness_alerts": self.channels},
        )
        result = nbp_fairness_alert_sensor(context)
        self.cursor = result.cursor
        return result


def rows(url: str, sql: str) -> list[dict]:
    with outbox.connect(url) as conn:
        return conn.execute(sql).fetchall()


def report_week(defs: dg.Definitions) -> list[dict]:
    write_week(defs, RANKING_WEEK)
    assert run_report(defs, RANKING_WEEK).success
    return outbox.alerts(defs.resources["postgres"].url)


# ---------------------------------------------------------------------------- the happy path, exactly once


def test_each_breach_reaches_every_channel_exactly_once(defs, smtp, hook, tmp_path):
    url = defs.resources["postgres"].url
    alerts = report_week(defs)
    assert [(a["product_id"], a["dimension"]) for a in alerts] == [("FX", "age_band"), ("SAV", "age_band")]
    ids = [a["alert_id"] for a in alerts]
    sensor = Sensor(url, channels_to(smtp, hook), tmp_path)

    first = sensor.tick()
    both = f"#{ids[0]}, #{ids[1]}"
    assert first.skip_reason.skip_message == (  # what was delivered where
        f"8 delivered this tick ({both} to e-mail via 127.0.0.1:{smtp.port} (none) to compliance@bank.example, "
        f"model-risk@bank.example; {both} to Slack channel #compliance-alerts via {hook.url}/...; {both} to Teams "
        f"webhook {hook.url}/...; {both} to webhook {hook.url}/... (signed)); no undelivered nbp.fairness_breach alert."
    )
    assert sorted(
        (o.metadata["channel"].value, o.metadata["outcome"].value, o.partition) for o in first.asset_events
    ) == sorted((c, "delivered", "2026-11-02") for c in ("email", "slack", "teams", "webhook") for _ in ids)
    for _ in range(3):  # the daemon keeps ticking
        assert sensor.tick().skip_reason.skip_message == "no undelivered nbp.fairness_breach alert."
    assert len(smtp.messages) == 2 and len(hook.posted("/hooks/")) == 2
    assert len(hook.posted("/api/chat.postMessage")) == 2 and len(hook.posted("/teams/")) == 2

    # The e-mail: who, subject, stable Message-ID, and the figures compliance needs.
    sender, recipients, mail = smtp.messages[0]
    version = alerts[0]["model_version"]
    assert (sender, recipients) == ("nbp-alerts@bank.example", ["compliance@bank.example", "model-risk@bank.example"])
    assert mail["Subject"] == f"[nbp.fairness_breach] week 2026-11-02: FX by age_band, gap 70.0 pp (model {version})"
    assert mail["Message-ID"] == f"<nbp.fairness_breach.{ids[0]}@bank.example>"
    body = mail.get_content()
    for line in (
        f"Alert:               #{ids[0]} (open)",
        "Highest rate:        25-34: 70.0% of 80 customers",
        "Lowest rate:         55-64: 0.0% of 80 customers",
        "Gap:                 70.0 pp (threshold 10 pp)",
        "Gap from:            ranking 70.0 pp, eligibility 0.0 pp: attributable to ranking",
        "Rate among eligible: 25-34: 70.0%, 55-64: 0.0%",
        f"Model version:       {version}",
        "Policies:            CON-001, CON-006",
    ):
        assert line in body, line

    # The webhook: the outbox payload as JSON, signed, with an idempotency key.
    request = hook.posted("/hooks/")[1]
    sent = json.loads(request["body"])
    assert sent == {
        **alerts[1]["payload"],
        "alert_id": ids[1],
        "status": "open",
        "resolution": None,
        "alert_weeks_breached": 1,
        "alert_first_week": "2026-11-02",
        "alert_last_week": "2026-11-02",
    }
    assert (sent["product_id"], sent["lowest_group"], sent["lowest_rate"], sent["gap_pp"]) == (
        "SAV",
        "25-34",
        0.3,
        70.0,
    )
    assert request["headers"]["Idempotency-Key"] == f"nbp.fairness_breach-{ids[1]}"
    expected = hmac.new(SIGNING_KEY.encode(), request["body"], hashlib.sha256).hexdigest()
    assert request["headers"]["X-NBP-Signature"] == f"sha256={expected}"

    # Slack through dagster-slack's client, Teams through dagster-msteams' client.
    slack = hook.posted("/api/chat.postMessage")[0]
    assert slack["headers"]["Authorization"] == f"Bearer {SLACK_TOKEN}"
    posted = json.loads(slack["body"])
    assert posted["channel"] == "#compliance-alerts" and posted["text"] == mail["Subject"]
    assert "*Gap:* 70.0 pp (threshold 10 pp)" in posted["blocks"][1]["text"]["text"]
    card = json.loads(hook.posted("/teams/")[0]["body"])["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert {"type": "TextBlock", "text": "**Lowest rate:** 55-64: 0.0% of 80 customers", "wrap": True} in card[
        "content"
    ]["body"]

    # The outbox says so, per alert and per channel.
    assert all(a["delivered_at"] is not None for a in outbox.alerts(url))
    deliveries = rows(url, f"SELECT alert_id, channel, state, attempts FROM {outbox.DELIVERIES} ORDER BY 1, 2")
    assert [(d["alert_id"], d["channel"], d["state"], d["attempts"]) for d in deliveries] == [
        (i, c, "delivered", 1) for i in ids for c in ("email", "slack", "teams", "webhook")
    ]

    # The week re-run with the same result, and a daemon that restarts with no cursor: nothing new.
    assert run_report(defs, RANKING_WEEK, instance=dg.DagsterInstance.ephemeral()).success
    assert [a["alert_id"] for a in outbox.alerts(url)] == ids
    sensor.cursor = None
    sensor.tick()
    assert len(smtp.messages) == 2 and len(hook.requests) == 6


def test_sensor_logs_each_outbox_event_once(defs, hook, tmp_path):
    url = defs.resources["postgres"].url
    report_week(defs)
    sensor = Sensor(url, channels_to(hook=hook), tmp_path)
    sensor.tick()
    last = rows(url, f"SELECT max(event_id) AS m FROM {outbox.EVENTS}")[0]["m"]
    assert sensor.cursor == str(last)
    events = [e["event"] for e in rows(url, f"SELECT event FROM {outbox.EVENTS} ORDER BY event_id")]
    assert events == ["opened", "opened", "evaluated"] + ["delivered"] * 6
    sensor.tick()
    assert sensor.cursor == str(last)  # nothing new to log


# ---------------------------------------------------------------------------- failures, back-off, recovery


def test_failed_delivery_stays_undelivered_is_retried_with_backoff_and_delivered_once(defs, smtp, hook, tmp_path):
    url = defs.resources["postgres"].url
    ids = [a["alert_id"] for a in report_week(defs)]
    smtp.reply = "451 4.3.0 Mailbox temporarily unavailable"
    hook.status = 503
    sensor = Sensor(
        url,
        channels_to(smtp, webhook_url=f"{hook.url}/hooks/fairness", retry_base_seconds=1.0, retry_max_seconds=4.0),
        tmp_path,
    )

    first = sensor.tick()
    reason = first.skip_reason.skip_message
    assert reason.startswith(
        "2 nbp.fairness_breach alert(s) undelivered in compliance.fairness_alerts: "
        f"#{ids[0]} 2026-11-02 FX by age_band (email: 1 attempt(s), last error SMTPDataError: (451, "
    )
    assert "webhook: 1 attempt(s), last error DeliveryError: HTTP 503: unavailable" in reason
    assert {o.metadata["outcome"].value for o in first.asset_events} == {"delivery failed"}
    pending = rows(url, f"SELECT * FROM {outbox.UNDELIVERED} ORDER BY alert_id")
    assert [p["alert_id"] for p in pending] == ids and all(a["delivered_at"] is None for a in outbox.alerts(url))

    sensor.tick()  # not due yet: back-off
    assert len(hook.requests) == 2
    time.sleep(1.05)
    sensor.tick()  # due again: second failure, next wait doubles
    state = rows(
        url, f"SELECT attempts, last_attempt_at, next_attempt_at FROM {outbox.DELIVERIES} WHERE channel = 'webhook'"
    )
    assert [s["attempts"] for s in state] == [2, 2]
    assert all(s["next_attempt_at"] - s["last_attempt_at"] == timedelta(seconds=2) for s in state)

    smtp.reply, hook.status = None, 200  # the receivers recover
    time.sleep(2.05)
    recovered = sensor.tick()
    assert recovered.skip_reason.skip_message == (
        f"4 delivered this tick (#{ids[0]}, #{ids[1]} to e-mail via 127.0.0.1:{smtp.port} (none) to "
        f"compliance@bank.example, model-risk@bank.example; #{ids[0]}, #{ids[1]} to webhook {hook.url}/...); "
        "no undelivered nbp.fairness_breach alert."
    )
    sensor.tick()
    assert len(smtp.messages) == 2 and [r["status"] for r in hook.requests] == [503, 503, 503, 503, 200, 200]
    trail = rows(
        url, f"SELECT alert_id, channel, event FROM {outbox.EVENTS} WHERE channel = 'webhook' ORDER BY event_id"
    )
    assert [(t["alert_id"], t["event"]) for t in trail] == [
        (ids[0], "delivery_failed"),
        (ids[1], "delivery_failed"),
        (ids[0], "delivery_failed"),
        (ids[1], "delivery_failed"),
        (ids[0], "delivered"),
        (ids[1], "delivered"),
    ]


def test_backoff_doubles_up_to_the_cap(clean_compliance, hook):
    assert [backoff_seconds(n, 60, 3600) for n in range(1, 9)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    url = clean_compliance
    outbox.record_week(url, date(2026, 11, 2), "m1", [sample_alert()], {}, "run-1")
    hook.status = 500
    channels = {"webhook": WebhookChannel(f"{hook.url}/hooks/x")}
    t0 = datetime(2026, 11, 16, 7, 0, tzinfo=timezone.utc)
    assert [a.attempts for a in deliver_due(url, channels, now=t0)] == [1]
    assert deliver_due(url, channels, now=t0 + timedelta(seconds=59)) == []
    second = deliver_due(url, channels, now=t0 + timedelta(seconds=60))
    assert [(a.attempts, a.next_attempt_at) for a in second] == [(2, t0 + timedelta(seconds=180))]
    assert len(hook.requests) == 2


# ---------------------------------------------------------------------------- resolution and model versions


def everyone_idle(customers):
    pairs, idle = ranking_bias_pairs(customers)
    return pairs, idle | True


def test_rerun_that_no_longer_breaches_resolves_and_a_relapse_is_a_new_alert(defs, hook, tmp_path):
    url = defs.resources["postgres"].url
    ids = [a["alert_id"] for a in report_week(defs)]
    sensor = Sensor(url, channels_to(webhook_url=f"{hook.url}/hooks/fairness"), tmp_path)
    sensor.tick()

    write_week(defs, RANKING_WEEK, everyone_idle)  # corrected data: SAV for all, FX for none
    result = run_report(defs, RANKING_WEEK)
    assert result.success
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "fairness_gap_within_threshold"
    )
    assert evaluation.passed and evaluation.metadata["resolved_alert_ids"].value == ids
    resolved = outbox.alerts(url)
    assert [(a["alert_id"], a["status"]) for a in resolved] == [(i, "resolved") for i in ids]
    assert resolved[0]["resolution"] == (
        f"re-evaluated by run {result.run_id} with model_version {resolved[0]['model_version']}: gap now 0.0 pp"
    )
    assert resolved[0]["resolved_by_run"] == result.run_id and resolved[0]["resolved_at"] is not None
    assert sensor.tick().skip_reason.skip_message == "no undelivered nbp.fairness_breach alert."
    assert len(hook.requests) == 2  # a resolution is recorded, not sent

    write_week(defs, RANKING_WEEK)  # the bias is back: a relapse, so new alerts, each sent once
    assert run_report(defs, RANKING_WEEK).success
    again = outbox.alerts(url)
    new = [a["alert_id"] for a in again if a["alert_id"] not in ids]
    assert [(a["status"], a["relapse_of"], a["weeks_breached"]) for a in again[2:]] == [("open", i, 1) for i in ids]
    assert [a["status"] for a in again[:2]] == ["resolved", "resolved"]
    sensor.tick()
    sensor.tick()
    assert [json.loads(r["body"])["alert_id"] for r in hook.requests] == ids + new
    events = [
        e["event"] for e in rows(url, f"SELECT event FROM {outbox.EVENTS} WHERE alert_id = {ids[0]} ORDER BY event_id")
    ]
    assert events == ["opened", "delivered", "week_cleared", "resolved"]
    assert run_report(defs, RANKING_WEEK).success  # re-run, same result: nothing new
    assert len(outbox.alerts(url)) == 4


def test_a_new_model_version_is_a_new_alert_and_supersedes_the_old(env, tmp_path):
    defs = build_definitions()
    url = defs.resources["postgres"].url
    old = [a["alert_id"] for a in report_week(defs)]
    tuned = weights_frame({**BIASED_LIFT, "FX_WALLET": ("relationship_gap", 0.45)})
    tuned.to_csv(tmp_path / "tuned.csv", index=False)
    env.setenv("NBP_WEIGHTS_FILE", str(tmp_path / "tuned.csv"))
    tuned_defs = build_definitions()
    assert run_report(tuned_defs, RANKING_WEEK).success
    alerts = outbox.alerts(url)
    assert len(alerts) == 4 and len({a["model_version"] for a in alerts}) == 2
    new = {a["product_id"]: a["alert_id"] for a in alerts if a["alert_id"] not in old}
    by_id = {a["alert_id"]: a for a in alerts}
    assert [by_id[i]["status"] for i in old] == ["resolved", "resolved"]
    assert by_id[old[0]]["resolution"].endswith(f"still over the threshold, now alert #{new['FX']}")
    assert {by_id[i]["status"] for i in new.values()} == {"open"}


# ---------------------------------------------------------------------------- no channel, secrets, configuration


def test_without_a_channel_alerts_wait_visibly_until_one_is_configured(defs, hook, tmp_path):
    url = defs.resources["postgres"].url
    ids = [a["alert_id"] for a in report_week(defs)]
    reason = Sensor(url, FairnessAlertsResource(), tmp_path).tick().skip_reason.skip_message
    assert reason == (
        "No alert channel is configured (set one of NBP_ALERT_MAILDIR, NBP_ALERT_SMTP_HOST, NBP_ALERT_WEBHOOK_URL, NBP_ALERT_SLACK_TOKEN, "
        "NBP_ALERT_TEAMS_WEBHOOK_URL): 2 nbp.fairness_breach alert(s) wait undelivered in compliance.fairness_alerts: "
        f"#{ids[0]} 2026-11-02 FX by age_band (no configured channel); #{ids[1]} 2026-11-02 SAV by age_band "
        "(no configured channel)."
    )
    assert rows(url, f"SELECT count(*) AS n FROM {outbox.DELIVERIES}")[0]["n"] == 0
    assert len(rows(url, f"SELECT * FROM {outbox.UNDELIVERED}")) == 2
    # A channel configured later takes the backlog.
    Sensor(url, channels_to(webhook_url=f"{hook.url}/hooks/fairness"), tmp_path).tick()
    assert [json.loads(r["body"])["alert_id"] for r in hook.requests] == ids


def test_secrets_stay_out_of_the_outbox_and_the_sensor_message(clean_compliance, tmp_path):
    url = clean_compliance
    outbox.record_week(url, date(2026, 11, 2), "m1", [sample_alert()], {}, "run-1")
    closed = free_port()  # nothing listens: the HTTP libraries quote the URL in their errors
    resource = FairnessAlertsResource(
        webhook_url=f"http://127.0.0.1:{closed}/hooks/T0KEN-SECRET-PATH",
        teams_webhook_url=f"http://127.0.0.1:{closed}/webhookb2/TEAMS-SECRET?sig=abc123",
    )
    result = Sensor(url, resource, tmp_path).tick()
    errors = [d["last_error"] for d in rows(url, f"SELECT last_error FROM {outbox.DELIVERIES}")]
    assert len(errors) == 2 and all("ConnectionError" in e or "Connection" in e for e in errors)
    everything = (
        json.dumps(errors)
        + result.skip_reason.skip_message
        + json.dumps([e["detail"] for e in rows(url, f"SELECT detail FROM {outbox.EVENTS}")])
    )
    for secret in ("T0KEN-SECRET-PATH", "TEAMS-SECRET", "abc123"):
        assert secret not in everything
    assert "***" in everything
    assert (
        WebhookChannel(f"http://127.0.0.1:{closed}/hooks/T0KEN").describe() == f"webhook http://127.0.0.1:{closed}/..."
    )


def test_smtp_login_against_a_real_server():
    accepted = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        # handled=False: let aiosmtpd answer 535 itself on a refusal
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"nbp", b"s3cret-pw"), handled=False)

    class Keep:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            accepted.append(envelope.mail_from)
            return "250 OK"

    port = free_port()
    controller = Controller(
        Keep(), hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        good = EmailChannel("127.0.0.1", port, "nbp@bank.example", ["c@bank.example"], "none", "nbp", "s3cret-pw")
        assert good.send({**sample_alert(), "alert_id": 7}) is None and accepted == ["nbp@bank.example"]
        bad = EmailChannel("127.0.0.1", port, "nbp@bank.example", ["c@bank.example"], "none", "nbp", "wrong-pw")
        with pytest.raises(Exception, match="535") as failure:
            bad.send({**sample_alert(), "alert_id": 8})
        assert "wrong-pw" not in str(failure.value) and len(accepted) == 1
    finally:
        controller.stop()


def test_slack_error_answer_is_a_failed_delivery(hook):
    hook.status = 404  # the local "Slack" answers {"ok": false, "error": "channel_not_found"}
    with pytest.raises(Exception, match="channel_not_found"):
        SlackChannel(SLACK_TOKEN, "#nowhere", f"{hook.url}/api/").send({**sample_alert(), "alert_id": 1})


def test_teams_legacy_connector_gets_a_hero_card():
    # Not posted: a legacy connector URL is *.webhook.office.com, which cannot be served here.
    payload = messages.teams_payload({**sample_alert(), "alert_id": 3}, legacy=True)
    attachment = payload["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.hero"
    assert attachment["content"]["title"].startswith("[nbp.fairness_breach] week 2026-11-02: SAV by age_band")
    assert "<b>Lowest rate:</b> 25-34: 30.0% of 80 customers" in attachment["content"]["text"]


def test_channel_configuration_is_checked():
    with pytest.raises(ValueError, match="NBP_ALERT_SMTP_FROM and NBP_ALERT_SMTP_TO"):
        FairnessAlertsResource(smtp_host="mail.bank.example").channels()
    with pytest.raises(ValueError, match="NBP_ALERT_SLACK_CHANNEL"):
        FairnessAlertsResource(slack_token=SLACK_TOKEN).channels()
    with pytest.raises(ValueError, match="plain http is only allowed to this machine"):
        FairnessAlertsResource(webhook_url="http://hooks.bank.example/x").channels()
    with pytest.raises(ValueError, match="NBP_ALERT_SMTP_SECURITY='tls'"):
        FairnessAlertsResource(smtp_host="m", smtp_from="a@b", smtp_to="c@d", smtp_security="tls").channels()
    assert list(FairnessAlertsResource(teams_webhook_url="https://bank.webhook.office.com/x").channels()) == ["teams"]


def test_resource_from_environment_keeps_secrets_as_env_vars(monkeypatch):
    environ = {
        "NBP_ALERT_SMTP_HOST": "mail.bank.example",
        "NBP_ALERT_SMTP_PORT": "2525",
        "NBP_ALERT_SMTP_PASSWORD": "pw-123456",
        "NBP_ALERT_SLACK_TOKEN": SLACK_TOKEN,
        "NBP_ALERT_RETRY_BASE_SECONDS": "30",
    }
    resource = FairnessAlertsResource.from_env(environ)
    assert resource.smtp_port == 2525 and resource.retry_base_seconds == 30.0
    assert resource.smtp_password == dg.EnvVar("NBP_ALERT_SMTP_PASSWORD") and resource.slack_token == dg.EnvVar(
        "NBP_ALERT_SLACK_TOKEN"
    )
    with pytest.raises(ValueError, match="NBP_ALERT_SMTP_PORT='smtp'"):
        FairnessAlertsResource.from_env({"NBP_ALERT_SMTP_PORT": "smtp"})


def test_sensor_is_in_the_code_location(defs):
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor.minimum_interval_seconds == 60 and sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert "fairness_alerts" in defs.resources and "compliance.fairness_alerts" in sensor.description


# ---------------------------------------------------------------------------- concurrency


def test_concurrent_writers_and_deliverers_never_duplicate(clean_compliance, hook):
    url = clean_compliance
    alerts = [sample_alert(product=p) for p in ("SAV", "CARD", "LOAN", "FX")]
    writers = [
        threading.Thread(target=outbox.record_week, args=(url, date(2026, 11, 2), "m1", alerts, {}, f"run-{i}"))
        for i in range(3)
    ]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    assert len(outbox.alerts(url)) == 4
    hook.delay = 0.2
    channels = {"webhook": WebhookChannel(f"{hook.url}/hooks/x")}
    results: list = []
    deliverers = [threading.Thread(target=lambda: results.extend(deliver_due(url, channels))) for _ in range(2)]
    for t in deliverers:
        t.start()
    for t in deliverers:
        t.join()
    assert sorted(json.loads(r["body"])["alert_id"] for r in hook.requests) == [
        a["alert_id"] for a in outbox.alerts(url)
    ]
    assert len(results) == 4 and all(r.delivered for r in results)


def sample_alert(product: str = "SAV", dimension: str = "age_band") -> dict:
    return alert_payload(
        {
            "product_id": product,
            "dimension": dimension,
            "highest_group": "55-64",
            "highest_rate": 1.0,
            "highest_customers": 80,
            "lowest_group": "25-34",
            "lowest_rate": 0.3,
            "lowest_customers": 80,
            "gap_pp": 70.0,
            "highest_eligible_rate": 1.0,
            "lowest_eligible_rate": 0.3,
            "highest_eligible_share": 1.0,
            "lowest_eligible_share": 1.0,
            "eligibility_pp": 0.0,
            "ranking_pp": 70.0,
        },
        "2026-11-02",
        "m1",
        10.0,
        "run-1",
        1,
        1,
        "/reports/fairness/2026-11-02.html",
    )
