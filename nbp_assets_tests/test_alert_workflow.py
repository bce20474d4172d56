"""Issue 10: alerts reach someone out of the box (the local Maildir), compliance works them
(CLI, audit trail, HTML report), an earlier outbox is migrated in place, and operations
are told of failed runs and late weeks. Real PostgreSQL, real files, the real CLI."""

from __future__ import annotations

import mailbox
import re
from datetime import date, datetime, timezone

import dagster as dg
import psycopg
import pytest

from nbp_assets.alerts import outbox, workflow
from nbp_assets.alerts.resource import FairnessAlertsResource
from nbp_assets.cli import main
from nbp_assets.core.postgres_resource import PostgresResource
from nbp_assets.definitions import build_definitions
from nbp_assets.ops import alerts as ops
from nbp_assets.ops.sensors import nbp_ops_alert_sensor, nbp_run_failure_alert_sensor
from nbp_assets_tests.test_alerts import Sensor, hook, report_week, rows, sample_alert  # noqa: F401  hook: fixture
from nbp_assets_tests.test_fairness_report import (  # noqa: F401  fixtures: clean_compliance, env, defs
    ELIGIBILITY_WEEK,
    RANKING_WEEK,
    clean_compliance,
    defs,
    env,
    run_report,
    write_week,
)

pytestmark = pytest.mark.integration


# ---------------------------------------------------------------------------- point 3: the local channel


def test_the_local_deployment_files_alerts_in_a_maildir_by_default(env, tmp_path):
    home = tmp_path / "home"
    assert FairnessAlertsResource.from_env({"NBP_HOME": str(home)}).maildir == str(home / "alerts" / "maildir")
    assert FairnessAlertsResource.from_env({"NBP_DEPLOYMENT": "production"}).maildir is None
    assert FairnessAlertsResource.from_env({"NBP_HOME": str(home), "NBP_ALERT_MAILDIR": "off"}).maildir is None

    defs = build_definitions()  # no channel variable set at all
    url = defs.resources["postgres"].url
    maildir = home / "alerts" / "maildir"
    assert list(defs.resources["fairness_alerts"].channels()) == ["maildir"]
    ids = [a["alert_id"] for a in report_week(defs)]
    sensor = Sensor(url, defs.resources["fairness_alerts"], tmp_path)
    reason = sensor.tick().skip_reason.skip_message
    assert reason == (
        f"2 delivered this tick (#{ids[0]}, #{ids[1]} to maildir {maildir}); no undelivered nbp.fairness_breach alert."
    )

    box = mailbox.Maildir(maildir, create=False)
    messages = sorted(box, key=lambda m: m["X-NBP-Alert-Id"])
    assert [m["Message-ID"].split("@")[0] for m in messages] == [f"<nbp.fairness_breach.{i}" for i in ids]
    assert messages[1]["Subject"].startswith("[nbp.fairness_breach] week 2026-11-02: SAV by age_band, gap 70.0 pp")
    body = messages[1].get_payload(decode=True).decode()
    assert "Product:             SAV Easy Saver" in body and "Weeks breached:      1 so far under this alert" in body
    files = sorted(p.name for p in (maildir / "new").iterdir())
    assert len(files) == 2 and all(f.endswith(".eml") for f in files)

    # Read in a mail client (moved to cur/ with a flag), then a re-delivery after a crash: no second copy.
    key = next(iter(box.keys()))
    message = box[key]
    message.set_subdir("cur")
    message.add_flag("S")
    box[key] = message
    with outbox.connect(url) as conn:
        conn.execute(f"UPDATE {outbox.DELIVERIES} SET state = 'pending' WHERE channel = 'maildir'")
    sensor.tick()
    assert len(list(box)) == 2


def test_the_demo_says_where_the_alerts_went(env, tmp_path):
    from nbp_assets.alerts.cli import deliver_now

    defs = build_definitions()
    report_week(defs)
    lines = deliver_now(defs.resources["postgres"].url)
    maildir = tmp_path / "home" / "alerts" / "maildir"
    assert lines[0].startswith("2 delivered this tick (") and f"to maildir {maildir})" in lines[0]
    assert lines[1] == f"  open them with: mutt -f {maildir}   (or any .eml under {maildir / 'new'})"


# ---------------------------------------------------------------------------- point 4: the workflow


def test_compliance_acknowledges_assigns_comments_and_resolves_with_an_audit_trail(env, capsys):
    env.setenv("NBP_OPERATOR", "alice")
    defs = build_definitions()
    url = defs.resources["postgres"].url
    alerts = report_week(defs)
    sav = next(a["alert_id"] for a in alerts if a["product_id"] == "SAV")
    html = open(alerts[0]["payload"]["report_html"], encoding="utf-8").read()
    assert f"Alert #{sav}: audit trail" in html and "alice" not in html

    main(["alerts", "ack", str(sav), "--reason", "seen, SAV rides on idle cash alone"])
    main(["alerts", "assign", str(sav), "--to", "bob", "--by", "carol", "--reason", "model owner for savings"])
    main(["alerts", "comment", str(sav), "--by", "bob", "weights", "under", "review"])
    out = capsys.readouterr().out
    assert f"alert #{sav} acknowledged by alice: seen, SAV rides on idle cash alone" in out
    assert f"alert #{sav} assigned by carol: model owner for savings" in out
    assert "report refreshed: " in out

    with pytest.raises(SystemExit) as refused:
        main(["alerts", "ack", str(sav), "--reason", "again"])
    assert refused.value.code == 2 and "already acknowledged by alice" in capsys.readouterr().err

    main(["alerts", "list"])
    listed = capsys.readouterr().out
    assert listed.startswith("2 open nbp.fairness_breach alert(s)")
    assert re.search(
        rf"#{sav} +open +SAV \(Easy Saver\) by age_band, .*1 week\(s\) 2026-11-02..2026-11-02, last gap 70.0 pp; "
        r"ack alice; assignee bob; NOT delivered",
        listed,
    )

    main(["alerts", "resolve", str(sav), "--by", "bob", "--reason", "weights v2 lift SAV by relationship gap too"])
    resolved = workflow.alert(url, sav)
    assert (resolved["status"], resolved["resolved_by"], resolved["resolution"]) == (
        "resolved",
        "bob",
        "resolved by bob: weights v2 lift SAV by relationship gap too",
    )
    with pytest.raises(SystemExit):
        main(["alerts", "assign", str(sav), "--to", "dan", "--reason", "too late"])
    main(["alerts", "comment", str(sav), "--by", "alice", "closed", "at", "the", "model", "risk", "forum"])

    trail = [
        (e["event"], e["actor"], e["detail"].get("reason"), e["detail"].get("assignee"))
        for e in workflow.trail(url, [sav])
    ]
    assert trail == [
        ("opened", None, None, None),
        ("acknowledged", "alice", "seen, SAV rides on idle cash alone", None),
        ("assigned", "carol", "model owner for savings", "bob"),
        ("commented", "bob", "weights under review", None),
        ("resolved", "bob", "weights v2 lift SAV by relationship gap too", None),
        ("commented", "alice", "closed at the model risk forum", None),
    ]
    assert all(e["at"] is not None for e in workflow.trail(url, [sav]))
    capsys.readouterr()
    main(["alerts", "show", str(sav)])
    shown = capsys.readouterr().out
    assert "acknowledged by alice: seen, SAV rides on idle cash alone" in shown
    assert "weeks breached: 2026-11-02" in shown

    html = open(alerts[0]["payload"]["report_html"], encoding="utf-8").read()
    section = re.search(r'<section id="alert-workflow">.*?</section>', html, re.S).group(0)
    for text in (
        "resolved by bob: weights v2 lift SAV by relationship gap too",
        "assigned to bob by carol",
        "commented by alice: closed at the model risk forum",
    ):
        assert text in section, text

    # The trail is append-only, in the database itself.
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in (
            f"UPDATE {outbox.EVENTS} SET actor = 'mallory'",
            f"DELETE FROM {outbox.EVENTS}",
            f"TRUNCATE {outbox.EVENTS}",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)

    # Resolved by a person while the breach persists: the same week re-run is not a relapse,
    # the next week's breach is.
    assert run_report(defs, RANKING_WEEK).success
    assert [a["alert_id"] for a in outbox.alerts(url) if a["product_id"] == "SAV"] == [sav]
    write_week(defs, ELIGIBILITY_WEEK)
    assert run_report(defs, ELIGIBILITY_WEEK).success
    savs = [a for a in outbox.alerts(url) if a["product_id"] == "SAV"]
    assert [(a["status"], a["relapse_of"]) for a in savs] == [("resolved", None), ("open", sav)]
    fx = next(a for a in outbox.alerts(url) if a["product_id"] == "FX")
    assert fx["weeks_breached"] == 2 and fx["status"] == "open"


V1_DDL = [  # compliance.fairness_alerts as the first version created it (one alert per week)
    "CREATE SCHEMA compliance",
    """CREATE TABLE compliance.fairness_alerts (
        alert_id BIGSERIAL PRIMARY KEY, alert_type TEXT NOT NULL DEFAULT 'nbp.fairness_breach',
        week_start DATE NOT NULL, product_id TEXT NOT NULL, dimension TEXT NOT NULL, model_version TEXT NOT NULL,
        highest_group TEXT NOT NULL, highest_rate DOUBLE PRECISION NOT NULL, highest_customers INTEGER NOT NULL,
        lowest_group TEXT NOT NULL, lowest_rate DOUBLE PRECISION NOT NULL, lowest_customers INTEGER NOT NULL,
        gap_pp NUMERIC(7,4) NOT NULL, threshold_pp NUMERIC(7,4) NOT NULL, eligibility_pp NUMERIC(8,4),
        ranking_pp NUMERIC(8,4), attributable_to TEXT, payload JSONB NOT NULL,
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(), created_by_run TEXT NOT NULL,
        last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(), last_seen_run TEXT NOT NULL, last_gap_pp NUMERIC(7,4) NOT NULL,
        delivered_at TIMESTAMPTZ, resolved_at TIMESTAMPTZ, resolved_by_run TEXT, resolution TEXT,
        reopened INTEGER NOT NULL DEFAULT 0,
        CONSTRAINT fairness_alerts_once UNIQUE (week_start, product_id, dimension, model_version))""",
    """CREATE TABLE compliance.fairness_alert_deliveries (
        alert_id BIGINT NOT NULL REFERENCES compliance.fairness_alerts (alert_id), channel TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered')),
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        last_attempt_at TIMESTAMPTZ, last_error TEXT, delivered_at TIMESTAMPTZ, PRIMARY KEY (alert_id, channel))""",
    """CREATE TABLE compliance.fairness_alert_events (
        event_id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT now(), week_start DATE NOT NULL,
        alert_id BIGINT REFERENCES compliance.fairness_alerts (alert_id), event TEXT NOT NULL, channel TEXT,
        run_id TEXT, detail JSONB NOT NULL DEFAULT '{}'::jsonb)""",
]


def test_an_outbox_of_the_first_version_is_migrated_in_place(clean_compliance):
    url = clean_compliance
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in V1_DDL:
            conn.execute(statement)
        for week, gap in (("2026-10-26", 60.0), ("2026-11-02", 70.0)):  # one breach, two weekly alerts
            conn.execute(
                "INSERT INTO compliance.fairness_alerts (week_start, product_id, dimension, model_version, highest_group, "
                "highest_rate, highest_customers, lowest_group, lowest_rate, lowest_customers, gap_pp, threshold_pp, "
                "payload, created_by_run, last_seen_run, last_gap_pp) VALUES (%s, 'SAV', 'age_band', 'm1', '55-64', 1, "
                "80, '25-34', 0.3, 80, %s, 10, '{}', 'r', 'r', %s)",
                (week, gap, gap),
            )
    with outbox.connect(url) as conn:
        outbox.ensure_schema(conn)
        outbox.ensure_schema(conn)  # idempotent
    first, second = outbox.alerts(url)
    assert (first["status"], first["weeks_breached"], str(first["week_start"]), str(first["last_week"])) == (
        "open",
        2,
        "2026-10-26",
        "2026-11-02",
    )
    assert (second["status"], second["resolution"]) == (
        "resolved",
        f"merged into alert #{first['alert_id']} (one alert per product, dimension and model_version)",
    )
    assert [
        (e["alert_id"], e["event"], e["actor"]) for e in workflow.trail(url, [first["alert_id"], second["alert_id"]])
    ] == [(second["alert_id"], "resolved", "outbox migration")]
    # The migrated outbox works as a new one: the next week's breach joins the open alert.
    outcome = outbox.record_week(url, date(2026, 11, 9), "m1", [sample_alert()], {}, "run-3")
    assert outcome.still_open == [first["alert_id"]] and outcome.weeks_breached == {first["alert_id"]: 3}
    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("UPDATE compliance.fairness_alerts SET status = 'open' WHERE alert_id = %s", (second["alert_id"],))


# ---------------------------------------------------------------------------- point 5: operations


def test_a_failed_weekly_run_notifies_the_same_channels_once(env, tmp_path):
    env.setenv("NBP_FAIRNESS_BLOCKS_PUBLISH", "true")
    defs = build_definitions()
    url = defs.resources["postgres"].url
    write_week(defs, RANKING_WEEK)
    instance = dg.DagsterInstance.ephemeral()
    result = run_report(defs, RANKING_WEEK, assets=("fairness_report", "nbp_current"), instance=instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    resources = {
        "postgres": PostgresResource(url=url, data_dir=str(tmp_path / "unused")),
        "fairness_alerts": defs.resources["fairness_alerts"],
    }
    for _ in range(2):  # the daemon may see the same failure twice: one alert
        context = dg.build_run_status_sensor_context(
            sensor_name="nbp_run_failure_alert_sensor",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            resources=resources,
        )
        nbp_run_failure_alert_sensor(context.for_run_failure())
    sent = rows(url, f"SELECT * FROM {outbox.OPS_ALERTS}")
    assert len(sent) == 1 and sent[0]["run_id"] == result.run_id and sent[0]["delivered_at"] is not None
    assert sent[0]["summary"].startswith("week 2026-11-02: ") and sent[0]["week_start"] == RANKING_WEEK.start
    mail = [
        m
        for m in mailbox.Maildir(tmp_path / "home" / "alerts" / "maildir", create=False)
        if m["X-NBP-Alert-Type"] == sent[0]["alert_type"]
    ]
    assert sent[0]["alert_type"] == "nbp.blocking_check_failed"
    assert sent[0]["summary"] == (
        "week 2026-11-02: blocking check(s) fairness_gap_within_threshold failed; the steps "
        "after it did not run, the apps keep the last published week"
    )
    subject = re.sub(r"\s+", " ", str(mail[0]["Subject"]))  # long headers are folded
    assert len(mail) == 1 and subject == f"[{sent[0]['alert_type']}] {sent[0]['summary']}"
    body = mail[0].get_payload(decode=True).decode()
    assert "Failed step fairness_report:" in body and result.run_id in body and "materialize --week 2026-11-02" in body


def test_a_week_not_published_by_monday_0900_is_one_operations_alert(env, hook, tmp_path):
    defs = build_definitions()
    url = defs.resources["postgres"].url
    channels = FairnessAlertsResource(webhook_url=f"{hook.url}/hooks/ops")
    resources = {"postgres": PostgresResource(url=url, data_dir=str(tmp_path / "unused")), "fairness_alerts": channels}
    instance = dg.DagsterInstance.ephemeral()  # nothing published at all
    due = ops.week_due(datetime.now(timezone.utc), date(2025, 1, 6))
    texts = [
        nbp_ops_alert_sensor(dg.build_sensor_context(instance=instance, resources=resources)).skip_message
        for _ in range(2)
    ]
    late = rows(url, f"SELECT * FROM {outbox.OPS_ALERTS}")
    assert len(late) == 1 and late[0]["alert_type"] == "nbp.week_not_published" and late[0]["week_start"] == due
    assert texts[0].startswith(
        f"recorded #{late[0]['alert_id']} nbp.week_not_published: week {due} was not published by Mon "
    )
    assert f"delivered #{late[0]['alert_id']} to webhook {hook.url}/..." in texts[0]
    assert texts[1] == "no operations alert pending."
    assert [r["headers"]["Idempotency-Key"] for r in hook.requests] == [f"nbp.week_not_published-{late[0]['alert_id']}"]


@pytest.mark.parametrize(
    "now, due",
    [
        ("2026-11-16T08:59:00+00:00", "2026-11-02"),  # Monday, 08:59 GMT: this Monday's deadline is still ahead
        ("2026-11-16T09:00:00+00:00", "2026-11-09"),  # 09:00 GMT: the week that just closed is due
        ("2026-06-08T08:30:00+00:00", "2026-06-01"),  # 09:30 BST is 08:30 UTC
        ("2026-06-08T07:59:00+00:00", "2026-05-25"),  # 08:59 BST
        ("2026-11-19T12:00:00+00:00", "2026-11-09"),  # mid-week
    ],
)
def test_the_publication_deadline_is_monday_0900_london(now, due):
    assert ops.week_due(datetime.fromisoformat(now), date(2025, 1, 6)).isoformat() == due
    assert ops.late_week(datetime.fromisoformat(now), {due}, date(2025, 1, 6)) is None
    assert ops.late_week(datetime.fromisoformat(now), set(), date(2025, 1, 6)).isoformat() == due
    assert ops.late_week(datetime.fromisoformat(now), {"2025-01-06"}, date(2025, 1, 6)).isoformat() == due
    assert ops.late_week(datetime.fromisoformat(now), {"2027-01-04"}, date(2025, 1, 6)) is None  # newer is live
    assert ops.week_due(datetime.fromisoformat(now), date(2027, 1, 4)) is None


def test_alert_ids_are_listed_compactly():
    from nbp_assets.alerts.sensor import id_list

    assert id_list([2, 1]) == "#1, #2"
    assert id_list([1, 2, 3, 4, 7, 9, 10, 11]) == "#1-#4, #7, #9-#11"


def test_a_blocking_check_failure_is_told_as_such():
    assert ops.checks_named_in(
        "2 blocking asset checks failed with ERROR severity:\nnbp_ranked: ranks_1_to_n,"
        "eligibility_gate\nfairness_report: fairness_gap_within_threshold"
    ) == ("ranks_1_to_n", "eligibility_gate", "fairness_gap_within_threshold")
    failed = ops.run_failure_alert(
        "r1",
        "nbp_weekly_job",
        "2026-11-02",
        [
            ops.StepFailure(
                "nbp_ranked", "nbp_ranked: 1 blocking check(s) failed; nothing was written.", ("eligibility_gate",)
            )
        ],
    )
    assert failed["type"] == "nbp.blocking_check_failed" and failed["dedupe_key"] == "run:r1"
    assert failed["summary"] == (
        "week 2026-11-02: blocking check(s) eligibility_gate failed; the steps after it "
        "did not run, the apps keep the last published week"
    )
    plain = ops.run_failure_alert("r2", "nbp_weekly_job", None, [ops.StepFailure("customers", "table x")])
    assert plain["type"] == "nbp.weekly_run_failed" and plain["summary"].startswith("job nbp_weekly_job: run failed")


def test_operations_alerting_is_in_the_code_location(env):
    defs = build_definitions()
    for name, interval in (
        ("nbp_run_failure_alert_sensor", 30),
        ("nbp_ops_alert_sensor", 60),
        ("nbp_freshness_checks_sensor", 30),
        ("nbp_fairness_alert_sensor", 60),
    ):
        sensor = defs.resolve_sensor_def(name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.minimum_interval_seconds == interval
    assert isinstance(defs.resolve_sensor_def("nbp_run_failure_alert_sensor"), dg.RunStatusSensorDefinition)
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys if k.asset_key == dg.AssetKey("nbp_current")}
    assert checks == {"contract", "freshness_check"}
    weekly = defs.resolve_job_def("nbp_weekly_job")  # judged after the deadline, not inside the run
    assert sorted(weekly.graph.node_dict) == [
        "activity",
        "customers",
        "eligibility",
        "fairness_report",
        "model_drift",
        "nbp_current",
        "nbp_ranked",
        "offer_outcomes",
        "ranking_weights",
        "scores",
        "signals",
    ]


def test_an_unmeasurable_gap_is_recorded_as_null_not_refused():
    """A breach that clears because a group emptied has no gap (NaN): the audit trail records
    null instead of PostgreSQL refusing the whole week's alert bookkeeping."""
    from nbp_assets.alerts.outbox import json_safe

    detail = {
        "weeks_breached": 2,
        "gap_pp": float("nan"),
        "bounds": [float("inf"), 1.5],
        "nested": {"x": float("-inf")},
    }
    assert json_safe(detail) == {"weeks_breached": 2, "gap_pp": None, "bounds": [None, 1.5], "nested": {"x": None}}
    assert json_safe(0.25) == 0.25 and json_safe("text") == "text"
