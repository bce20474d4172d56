"""Operations alerts: the weekly run failed, a blocking check failed, a week was not
published in time, or a monitoring warning (model drift, an outcome gap) failed. No Dagster
here: the rules and what each alert says.

They go to the same channels as compliance's fairness alerts, through their own outbox
tables (outbox.OPS_ALERTS): recorded once per run, per late week, or per week and metric of
a warning, delivered with the same back-off until a channel accepts them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from psycopg.types.json import Jsonb

from nbp_assets.alerts import outbox

RUN_FAILED = "nbp.weekly_run_failed"
CHECK_FAILED = "nbp.blocking_check_failed"
WEEK_LATE = "nbp.week_not_published"
# A failed warning check of a monitoring asset: one alert per week and metric, whatever the
# number of runs of the week (dedupe key nbp.<asset>:<week>:<metric>).
WARNING_TYPES = {"model_drift": "nbp.model_drift_warning", "offer_outcomes": "nbp.offer_outcomes_warning"}
# The metadata entry in which a failed warning check names its metrics ({metric: detail}).
DRIFTED_METRICS = "drifted_metrics"
LONDON = ZoneInfo("Europe/London")
# The apps read the new week from Monday morning: it must be in nbp_current by 09:00
# London, three hours after the schedule starts it (06:00).
PUBLISH_DEADLINE_CRON = "0 9 * * 1"
PUBLISH_DEADLINE = time(9, 0)


@dataclass(frozen=True)
class StepFailure:
    step: str
    cause: str  # the failure's own description, for a person
    failed_checks: tuple[str, ...] = ()  # blocking checks that failed the step, if that was why


def checks_named_in(message: str) -> tuple[str, ...]:
    """The checks Dagster names when blocking checks stop a step: after a first line,
    one line per asset, `asset: check_a,check_b`."""
    return tuple(
        c.strip()
        for line in message.strip().splitlines()[1:]
        if ":" in line
        for c in line.split(":", 1)[1].split(",")
        if c.strip()
    )


def publish_deadline(week_start: date) -> datetime:
    """When the week must be published: 09:00 London on the Monday after it closes."""
    return datetime.combine(week_start + timedelta(days=7), PUBLISH_DEADLINE, tzinfo=LONDON)


def week_due(now: datetime, first_week: date) -> date | None:
    """The latest week whose publication deadline has passed at `now` (None before the first)."""
    local = now.astimezone(LONDON)
    monday = local.date() - timedelta(days=local.weekday())
    # This Monday's deadline covers the week that started a week earlier.
    due = (
        monday - timedelta(days=7)
        if local >= datetime.combine(monday, PUBLISH_DEADLINE, tzinfo=LONDON)
        else monday - timedelta(days=14)
    )
    return due if due >= first_week else None


def late_week(now: datetime, published: Collection[str], first_week: date) -> date | None:
    """The week that should be published by now and is not, else None. `published`: the
    Monday keys of the weeks nbp_current was materialized for. Only the latest due week
    is judged (an older one was alerted when it was the latest), and a newer week
    published already means the apps are not behind: nbp_current only moves forward."""
    due = week_due(now, first_week)
    if due is None or any(key >= due.isoformat() for key in published):
        return None
    return due


def week_late_alert(week_start: date, now: datetime, last_published: str | None) -> dict:
    deadline = publish_deadline(week_start)
    summary = (
        f"week {week_start} was not published by {deadline:%a %Y-%m-%d %H:%M} {deadline.tzname()}: "
        f"the apps still read week {last_published or '(none)'}"
    )
    return _alert(
        WEEK_LATE,
        f"{WEEK_LATE}:{week_start}",
        summary,
        week_start,
        None,
        [
            ("Week", str(week_start)),
            ("Deadline", f"{deadline:%Y-%m-%d %H:%M %Z} (Monday 09:00 Europe/London)"),
            ("Noticed at", f"{now.astimezone(LONDON):%Y-%m-%d %H:%M %Z}"),
            ("Latest week in nbp_current", last_published or "(none)"),
            (
                "Action",
                "Look for a failed or missing run of nbp_weekly_job for the week (Dagster UI, Runs), fix it "
                f"and materialize it: python -m nbp_assets materialize --week {week_start}",
            ),
        ],
    )


def run_failure_alert(
    run_id: str, job: str, week: str | None, failures: Sequence[StepFailure], run_url: str | None = None
) -> dict:
    """A failed run; a blocking check's failure is told as such (it needs a data fix, not a rerun)."""
    checks = [c for f in failures for c in f.failed_checks]
    kind = CHECK_FAILED if checks else RUN_FAILED
    what = f"blocking check(s) {', '.join(checks)} failed" if checks else "run failed"
    where = f"week {week}" if week else f"job {job}"
    summary = f"{where}: {what}; the steps after it did not run, the apps keep the last published week"
    lines = [("Run", run_id), ("Job", job), ("Week", week or "(not partitioned)")]
    lines += [(f"Failed step {f.step}", f.cause[:1000]) for f in failures] or [
        ("Cause", "see the run in the Dagster UI")
    ]
    lines.append(
        (
            "Action",
            "Fix the data or the code the failure names, then re-run the week"
            + (f": python -m nbp_assets materialize --week {week}" if week else ""),
        )
    )
    if run_url:
        lines.append(("Dagster run", run_url))
    return _alert(kind, f"run:{run_id}", summary, date.fromisoformat(week) if week else None, run_id, lines)


@dataclass(frozen=True)
class WarningFailure:
    """A failed warning check of a monitoring asset, for one metric (the check's name when
    the check does not name its metrics)."""

    asset: str
    check: str
    week: str
    metric: str
    description: str
    run_id: str
    detail: Mapping[str, object] | None = None  # e.g. baseline, value, threshold of the metric


def warning_failures(
    asset: str, check: str, week: str | None, description: str | None, run_id: str, metrics: object
) -> list[WarningFailure]:
    """One WarningFailure per drifted metric of a failed warning check; `metrics` is the
    check's drifted_metrics metadata ({metric: detail} or [metric]), None when it has none."""
    if week is None or asset not in WARNING_TYPES:
        return []
    named = metrics if isinstance(metrics, Mapping) else {str(m): None for m in (metrics or [])}
    named = named or {check: None}
    return [
        WarningFailure(
            asset, check, week, str(m), (description or "").strip(), run_id, d if isinstance(d, Mapping) else None
        )
        for m, d in named.items()
    ]


def warning_alert(failure: WarningFailure) -> dict:
    """The operations alert of one metric of a failed warning check (once per week and metric)."""
    f = failure
    summary = f"week {f.week}: {f.asset} warning {f.check}" + ("" if f.metric == f.check else f": {f.metric}")
    if f.detail and "value" in f.detail and "threshold" in f.detail:
        summary += f" is {float(f.detail['value']):.4g}, over its threshold {float(f.detail['threshold']):g}"
    facts = [("Week", f.week), ("Asset", f.asset), ("Check (warning)", f.check), ("Metric", f.metric)]
    facts += [(str(k).capitalize(), str(v)) for k, v in (f.detail or {}).items()]
    facts += [
        ("Check result", f.description[:1000] or "(none)"),
        ("Run", f.run_id),
        (
            "Action",
            f"The week is published (a warning does not block). Read nbp_work.{f.asset} for week {f.week} "
            "(docs/monitoring.md) and the input feed behind the metric; a re-run of the week does not alert again.",
        ),
    ]
    return _alert(
        WARNING_TYPES[f.asset],
        f"nbp.{f.asset}:{f.week}:{f.metric}",
        summary,
        date.fromisoformat(f.week),
        f.run_id,
        facts,
    )


def _alert(
    kind: str, key: str, summary: str, week: date | None, run_id: str | None, facts: list[tuple[str, str]]
) -> dict:
    return {
        "type": kind,
        "dedupe_key": key,
        "summary": summary,
        "week": str(week) if week else None,
        "run_id": run_id,
        "facts": [list(f) for f in facts],
    }


def record(url: str, alert: Mapping) -> tuple[int, bool]:
    """Record the alert once (by its dedupe key); (alert id, whether it is new)."""
    with outbox.connect(url) as conn:
        outbox.ensure_schema(conn)
        row = conn.execute(
            f"INSERT INTO {outbox.OPS_ALERTS} (alert_type, dedupe_key, week_start, run_id, summary, payload) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (dedupe_key) DO NOTHING RETURNING alert_id",
            (alert["type"], alert["dedupe_key"], alert["week"], alert["run_id"], alert["summary"], Jsonb(dict(alert))),
        ).fetchone()
        if row is not None:
            return row["alert_id"], True
        return conn.execute(
            f"SELECT alert_id FROM {outbox.OPS_ALERTS} WHERE dedupe_key = %s", (alert["dedupe_key"],)
        ).fetchone()["alert_id"], False


def undelivered(url: str) -> list[dict]:
    with outbox.connect(url) as conn:
        outbox.ensure_schema(conn)
        return conn.execute(
            f"SELECT alert_id, alert_type, summary FROM {outbox.OPS_ALERTS} "
            "WHERE delivered_at IS NULL ORDER BY alert_id"
        ).fetchall()
