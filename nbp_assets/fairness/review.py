"""The week's review report as files and UI metadata: the standalone HTML file, the
materialization's metadata (tables and charts for the UI), and the refresh of the later
weeks' reports a (re-)evaluated week changes. The rendering itself is report.py's; the
stored rows are read through record.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd

from nbp_assets.alerts import outbox, workflow
from nbp_assets.core.partitions import Week
from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.fairness import alert, maths, record
from nbp_assets.fairness import report as render
from nbp_assets.fairness.breaches import breaches_of
from nbp_assets.fairness.compute import WeekFairness
from nbp_assets.fairness.config import FairnessConfig
from nbp_assets.fairness.contract import REPORT_TABLE, left_out_dimensions
from nbp_assets.weekly.io import common_metadata

UNKNOWN_HEALTH_LABEL = "customers withheld for unknown MOD-040 health (treated as not suitable)"


def report_path(week: Week) -> Path:
    return render.html_path(week.key)


def workflow_html(url: str, week: Week) -> str:
    """The alert workflow section: the alerts that count the week and their trail."""
    alerts = workflow.alerts_of_week(url, week.start)
    return render.workflow_section(alerts, workflow.trail(url, [a["alert_id"] for a in alerts]), workflow.describe_step)


def left_out_text(config: FairnessConfig) -> str:
    left_out = left_out_dimensions(config.dimensions)
    return "; ".join(f"{d} ({why})" for d, why in left_out.items()) or "none"


@dataclass(frozen=True)
class Evaluated:
    """A week as its evaluation left it: the rates and gaps, the stored rows, the trend
    and the breaches' alerts (the report's top table)."""

    week: Week
    model_version: str
    run_id: str
    computed: WeekFairness
    rows: pd.DataFrame
    weeks: list[str]
    history: pd.DataFrame
    alerts_table: pd.DataFrame


def write_html(evaluated: Evaluated, config: FairnessConfig, url: str, approval: str = "not looked up") -> Path:
    """The week's standalone HTML report."""
    e = evaluated
    meta = {
        "week": e.week.key,
        "model_version": e.model_version,
        "approval": approval,  # the model registry's (weekly/registry.py approval_of)
        "dimensions judged": ", ".join(config.judged),
        "dimensions left out": left_out_text(config),
        "minimum group size": config.min_group_size,
        "threshold": f"{config.threshold_pp:g} pp",
        UNKNOWN_HEALTH_LABEL: render.unknown_health_text(e.computed.unknown_health, e.computed.unknown_health_total()),
        "Dagster run": e.run_id,
        "alert outbox": outbox.ALERTS,
    }
    content = render.render_html(
        meta,
        e.computed.gaps,
        e.rows,
        e.history,
        e.weeks,
        e.alerts_table,
        config.threshold_pp,
        workflow_html(url, e.week),
        e.computed.names,
    )
    return render.write_html(report_path(e.week), content)


def materialization_metadata(
    evaluated: Evaluated,
    config: FairnessConfig,
    breaches: int,
    outcome: outbox.RecordOutcome,
    refreshed: list[str],
    started: float,
) -> dict:
    """The materialization's metadata: counts, the alerts, the gap chart and the tables."""
    e, names, gaps, threshold = evaluated, evaluated.computed.names, evaluated.computed.gaps, config.threshold_pp
    chart = render.gap_chart_svg(gaps, threshold, f"Gap per product and dimension, week {e.week.key}")
    by_gap = gaps.sort_values("gap_pp", ascending=False, kind="stable")
    return {
        **common_metadata(e.week, len(e.rows), REPORT_TABLE, started),
        "model_version": e.model_version,
        "breaches": breaches,
        "alerts": dg.MetadataValue.md(render.markdown(e.alerts_table)),
        "resolved_alerts": dg.MetadataValue.json(outcome.resolved),
        "gap_chart": dg.MetadataValue.md(render.md_image(chart, "gap chart")),
        "gaps": dg.MetadataValue.md(render.markdown(render.gaps_table(by_gap, names))),
        "gap_history": dg.MetadataValue.md(render.markdown(render.history_table(e.history, e.weeks, names))),
        "rates": dg.MetadataValue.md(render.markdown(render.rates_table(e.rows, names))),
        "dimensions_judged": ", ".join(config.judged),
        "dimensions_left_out": left_out_text(config),
        "later_reports_refreshed": dg.MetadataValue.json(refreshed),
        "unjudged_groups": int((~e.rows["judged"]).sum()),
        **unknown_health_metadata(e.computed),
        "report_html": dg.MetadataValue.path(str(report_path(e.week))),
    }


def unknown_health_metadata(computed: WeekFairness) -> dict:
    """The customers withheld for unknown MOD-040 health: the count and per group (none
    without nbp_work.withheld)."""
    total = computed.unknown_health_total()
    if total is None:
        return {}
    return {
        "unknown_health_withheld": total,
        "unknown_health_by_group": render.unknown_health_text(computed.unknown_health, total),
    }


def stored_gaps(rows: pd.DataFrame, config: FairnessConfig) -> pd.DataFrame:
    """A stored week's gap details (groups, intervals, attribution), computed again from its
    report rows; the breach and gap themselves are the stored ones."""
    columns = maths.RATE_COLUMNS
    if rows[maths.ELIGIBLE_COLUMNS].notna().all().all():  # absent from reports written before CON-006
        columns = columns + maths.ELIGIBLE_COLUMNS
        suitable = maths.SUITABLE_COLUMNS
        if set(suitable) <= set(rows.columns) and rows["suitable"].notna().all():  # since nbp_work.withheld
            columns = columns + suitable
    details = maths.fairness_gaps(rows[columns].reset_index(drop=True), config.threshold_pp, config.min_group_size)
    stored = rows[["product_id", "dimension", "gap_pp", "breach"]].drop_duplicates(["product_id", "dimension"])
    return details.drop(columns=["gap_pp", "breach"]).merge(stored, on=["product_id", "dimension"])


def _refresh(warehouse: WarehouseResource, url: str, other: Week, week: Week, config: FairnessConfig, names: dict):
    """Rewrite the trend and alert sections of `other`'s report; whether any was replaced."""
    threshold = config.threshold_pp
    rows = record.week_rows(warehouse, other)
    gaps = stored_gaps(rows, config)
    weeks, history = record.gap_history(warehouse, other, gaps, config)
    model_version = str(rows["model_version"].iloc[0])
    alerts = alert.alert_payloads(
        gaps, breaches_of(rows), history, other, model_version, threshold, "", names, str(report_path(other))
    )
    note = f"Refreshed after week {week.key} was (re-)evaluated."
    sections = {
        render.BREACHES_SECTION: render.breaches_section(
            render.alerts_table(alerts, alert.states_in_outbox(url, other))
        ),
        render.WORKFLOW_SECTION: workflow_html(url, other),
        render.TREND_SECTION: render.trend_section(history, weeks, threshold, names, note),
    }
    replaced = [render.replace_section(report_path(other), sid, html) for sid, html in sections.items()]
    return any(replaced)


def refresh_later_reports(
    warehouse: WarehouseResource, url: str, week: Week, config: FairnessConfig, names: dict
) -> list[str]:
    """A backfilled (or re-run) week changes what every later report within its window
    says: the trend, and the alerts its breaches belong to (their weeks breached, first and
    latest week, status). Rewrite those sections of the later weeks' reports."""
    return [
        other.key
        for other in record.later_weeks(warehouse, week, config)
        if _refresh(warehouse, url, other, week, config, names)
    ]
