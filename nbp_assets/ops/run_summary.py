"""What a week's run did, told at the end of `demo`, `materialize` and `backfill`.

A week's summary answers the operator's questions without opening the UI: did every check
pass (blocking and warning apart), were there fairness breaches (how many, the worst),
what happened to their alerts (opened by this run, delivered, still waiting), and did the
apps get the week in `nbp_current` (and if not, why not).

The functional core: plain records in, lines of text and an exit code out. The CLI reads
the run's events and the week's alerts and hands them here.

Exit codes of `materialize`, `backfill` and `demo` (README, "Backfills and re-runs"):
  0  every week ran and every blocking check passed; failed warning checks (a fairness
     breach) are in the summary and have their alert, but do not fail the command
  1  a week failed: a step error or a failed blocking check (nothing of that step was written)
  2  the command was refused before anything ran (bad arguments, unknown week, configuration)
  3  with --fail-on-warning only: every week ran, but a warning check failed
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

EXIT_OK, EXIT_WEEK_FAILED, EXIT_REFUSED, EXIT_WARNING = 0, 1, 2, 3
CURRENT_ASSET = "nbp_current"


@dataclass(frozen=True)
class CheckOutcome:
    """One asset check of the week: None for passed means it did not run (its step did not)."""

    asset: str
    check: str
    blocking: bool
    passed: bool | None

    @property
    def name(self) -> str:
        return f"{self.asset}:{self.check}"


@dataclass(frozen=True)
class Breach:
    """A breach of the week (nbp.fairness_breach): a product recommended to one group of a
    dimension more than the threshold more often than to another, and the alert it
    belongs to, as compliance is handling it."""

    alert_id: int | None  # None: no alert counts the week (the outbox lost it)
    product_id: str
    dimension: str
    gap_pp: float
    delivered: bool
    opened_by_this_run: bool
    status: str = "open"  # of its alert: open or resolved
    acknowledged: bool = False


@dataclass(frozen=True)
class WeekSummary:
    week: str  # the partition key: the Monday the week starts
    succeeded: bool
    checks: tuple[CheckOutcome, ...]
    breaches: tuple[Breach, ...] | None  # None: fairness_report did not run, breaches unknown
    published: bool | None  # None: nbp_current did not run
    publish_note: str  # what nbp_current did, or why it did not
    failures: Mapping[str, str] = field(default_factory=dict)  # step -> cause

    def failed(self, blocking: bool) -> list[CheckOutcome]:
        return [c for c in self.checks if c.passed is False and c.blocking == blocking]

    @property
    def worst(self) -> Breach | None:
        if not self.breaches:
            return None
        return max(self.breaches, key=lambda b: (b.gap_pp, b.product_id, b.dimension))


def breaches_of_week(breaches: Iterable[Mapping], alerts: Iterable[Mapping], run_id: str) -> tuple[Breach, ...]:
    """The week's breaches (fairness.breaches: product_id, dimension, gap_pp, the same the
    check counts), each with the alert that counts the week (workflow.alerts_of_week rows;
    the newest one when a product and dimension has had several)."""
    by_key = {(a["product_id"], a["dimension"]): a for a in sorted(alerts, key=lambda a: a["alert_id"])}
    found = []
    for b in breaches:
        a = by_key.get((b["product_id"], b["dimension"]))
        found.append(
            Breach(
                None if a is None else int(a["alert_id"]),
                b["product_id"],
                b["dimension"],
                float(b["gap_pp"]),
                a is not None and a["delivered_at"] is not None,
                a is not None and a["created_by_run"] == run_id,
                "open" if a is None else a["status"],
                a is not None and a["acknowledged_at"] is not None,
            )
        )
    return tuple(found)


def publish_outcome(metadata: Mapping[str, object] | None, failure: str | None, ran: bool) -> tuple[bool | None, str]:
    """(published, why) of nbp_current from its materialization's or observation's metadata,
    or from its step failure."""
    if metadata is not None and "published" in metadata:
        return bool(metadata["published"]), str(metadata.get("outcome", ""))
    if failure is not None:
        return False, f"step failed: {failure}"
    if not ran:
        return None, "did not run: an upstream step failed"
    return None, "ran but recorded no outcome"


def week_summary(
    week: str,
    succeeded: bool,
    planned_checks: Sequence[tuple[str, str, bool]],
    evaluations: Mapping[tuple[str, str], bool],
    breaches: Iterable[Mapping] | None,
    alerts: Iterable[Mapping],
    run_id: str,
    publish: tuple[bool | None, str],
    failures: Mapping[str, str] | None = None,
) -> WeekSummary:
    """planned_checks: (asset, check, blocking) of the job; evaluations: (asset, check) ->
    passed, as the run reported them; breaches: the week's (fairness.breaches), None when
    fairness_report did not run; alerts: the outbox rows of the alerts that count the week."""
    checks = tuple(CheckOutcome(a, c, b, evaluations.get((a, c))) for a, c, b in planned_checks)
    breaches = None if breaches is None else breaches_of_week(breaches, alerts, run_id)
    return WeekSummary(week, succeeded, checks, breaches, publish[0], publish[1], dict(failures or {}))


def _names(checks: Sequence[CheckOutcome]) -> str:
    return f" ({', '.join(c.name for c in checks)})" if checks else ""


def _on_alerts(breaches: Sequence[Breach], what: str) -> str:
    ids = ", ".join(f"#{b.alert_id}" for b in breaches)
    article = "an" if what[0] in "aeiou" else "a"
    return f"{len(breaches)} on {f'{article} {what} alert' if len(breaches) == 1 else what + ' alerts'} {ids}"


def _handled(breaches: Sequence[Breach]) -> str:
    """Which breaches compliance already has in hand: on an acknowledged or a resolved alert."""
    resolved = [b for b in breaches if b.status == "resolved"]
    acknowledged = [b for b in breaches if b.acknowledged and b.status != "resolved"]
    parts = [_on_alerts(acknowledged, "acknowledged")] if acknowledged else []
    parts += [_on_alerts(resolved, "resolved")] if resolved else []
    return f" ({', '.join(parts)})" if parts else ""


def render(summary: WeekSummary, threshold_pp: float, seconds: float | None = None) -> list[str]:
    """The week's summary as the operator reads it at the end of a command."""
    s = summary
    ran = [c for c in s.checks if c.passed is not None]
    passed = [c for c in ran if c.passed]
    blocking, warning = s.failed(True), s.failed(False)
    not_run = len(s.checks) - len(ran)
    took = f" in {seconds:.1f}s" if seconds is not None else ""
    lines = [f"week {s.week}: {'succeeded' if s.succeeded else 'FAILED'}{took}"]
    lines.append(
        f"  checks      : {len(passed)} passed, {len(blocking)} blocking failed{_names(blocking)}, "
        f"{len(warning)} warning failed{_names(warning)}"
        + (f", {not_run} not run (their step did not run)" if not_run else "")
    )
    for step, cause in s.failures.items():
        # The cause itself is printed once, as the step fails (cli.materialize_week's FAILED line).
        lines.append(f"  failed step : {step} (its cause is printed above: FAILED {step})")
    if s.breaches is None:
        lines.append("  breaches    : unknown: fairness_report did not run")
        lines.append("  alerts      : none recorded: fairness_report did not run")
    elif not s.breaches:
        lines.append(f"  breaches    : none (no product's gap over {threshold_pp:g} pp)")
        lines.append("  alerts      : none opened")
    else:
        w = s.worst
        lines.append(
            f"  breaches    : {len(s.breaches)} fairness breach(es) over {threshold_pp:g} pp{_handled(s.breaches)}; "
            f"worst {w.product_id} by {w.dimension}, gap {w.gap_pp:.1f} pp "
            + ("(no alert recorded)" if w.alert_id is None else f"(alert #{w.alert_id})")
        )
        opened = sum(b.opened_by_this_run for b in s.breaches)
        resolved = sum(b.status == "resolved" for b in s.breaches)
        delivered = sum(b.delivered for b in s.breaches)
        lines.append(
            f"  alerts      : {opened} opened by this run, {len(s.breaches) - opened - resolved} already open"
            + (f", {resolved} resolved" if resolved else "")
            + f"; {delivered} delivered, {len(s.breaches) - delivered} waiting for nbp_fairness_alert_sensor "
            "(compliance.fairness_alerts)"
        )
    state = {True: "published", False: "NOT published", None: "NOT published"}[s.published]
    lines.append(f"  nbp_current : {state}: {s.publish_note}")
    return lines


def exit_code(summaries: Sequence[WeekSummary], fail_on_warning: bool = False) -> int:
    """The command's exit code (see the module docstring)."""
    if any(not s.succeeded for s in summaries):
        return EXIT_WEEK_FAILED
    if fail_on_warning and any(s.failed(False) for s in summaries):
        return EXIT_WARNING
    return EXIT_OK


# ----------------------------------------------------------------------------- shell


def summarize_run(job, result, week: str, postgres_url: str, warehouse) -> WeekSummary:
    """A week's summary from a finished run of the weekly job (its events), the week's
    breaches as its fairness report stores them (the same the check counts), and the
    alerts that count the week in the compliance outbox (read only)."""
    import dagster as dg

    from nbp_assets.alerts import workflow
    from nbp_assets.cli import failure_cause
    from nbp_assets.core.partitions import Week
    from nbp_assets.fairness.breaches import week_breaches
    from nbp_assets.weekly import checks

    graph = job.asset_layer.asset_graph
    planned = sorted(
        (k.asset_key.to_user_string(), k.name, graph.get_check_spec(k).blocking) for k in graph.asset_check_keys
    )
    evaluations: dict[tuple[str, str], bool] = {}
    failures: dict[str, str] = {}
    started: set[str] = set()  # steps that ran
    publish_metadata = None
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            e = event.event_specific_data
            evaluations[(e.asset_key.to_user_string(), e.check_name)] = e.passed
        elif event.event_type == dg.DagsterEventType.STEP_START:
            started.add(event.step_key)
        elif event.is_step_failure:
            failures[event.step_key] = failure_cause(event.step_failure_data)
        elif event.asset_key == dg.AssetKey(CURRENT_ASSET) and event.event_type in (
            dg.DagsterEventType.ASSET_MATERIALIZATION,
            dg.DagsterEventType.ASSET_OBSERVATION,
        ):
            recorded = (
                event.step_materialization_data.materialization
                if event.is_step_materialization
                else event.asset_observation_data.asset_observation
            )
            publish_metadata = {k: v.value for k, v in recorded.metadata.items()}
    breaches, alerts = None, []
    if ("fairness_report", checks.FAIRNESS_GAP) in evaluations:  # reported only after its alerts are recorded
        start = Week.from_key(week)
        breaches = week_breaches(warehouse, start).to_dict("records")
        alerts = workflow.alerts_of_week(postgres_url, start.start)
    publish = publish_outcome(publish_metadata, failures.get(CURRENT_ASSET), CURRENT_ASSET in started)
    return week_summary(week, result.success, planned, evaluations, breaches, alerts, result.run_id, publish, failures)
