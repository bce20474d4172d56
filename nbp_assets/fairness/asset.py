"""CON-001 fairness monitoring of the weekly ranking: the fairness_report asset and its check.

Wiring only: the maths is in maths.py, what an alert carries in alert.py, the review
report's tables, charts and HTML in report.py; the compliance outbox is alerts/outbox.py.
"""

import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from nbp_assets.alerts import outbox, workflow
from nbp_assets.contract.tables import CUSTOMERS, HISTORY, PRODUCTS
from nbp_assets.core.partitions import Week, weekly_partitions
from nbp_assets.core.postgres_resource import PostgresResource
from nbp_assets.core.warehouse import WarehouseResource, sql_date
from nbp_assets.fairness import maths as fairness
from nbp_assets.fairness import report as render
from nbp_assets.fairness.alert import alert_payload
from nbp_assets.fairness.breaches import breaches_of, week_breaches
from nbp_assets.fairness.config import FairnessConfig, fairness_config
from nbp_assets.fairness.contract import REPORT_TABLE, fairness_report_model, left_out_dimensions
from nbp_assets.weekly import checks
from nbp_assets.weekly.eligibility import ACTIVE
from nbp_assets.weekly.io import (
    GROUP,
    WEEKLY_POOL,
    common_metadata,
    week_of,
    week_slice,
    with_week,
    work_table,
    write_slice,
)
from nbp_assets.weekly.weights import Weights
from nbp_assets.weekly.weights_asset import RANKING_WEIGHTS


def report_path(week: Week) -> Path:
    return render.html_path(week.key)


def _eligible_counts(warehouse: WarehouseResource, week: Week, dimensions: tuple[str, ...]) -> pd.DataFrame:
    # Counted in the warehouse: one row per product and combination of group values,
    # instead of every eligible pair. Dimension names are validated customer columns.
    dims = ", ".join(f"c.{d}" for d in dimensions)
    return warehouse.query(
        f"SELECT e.product_id, {dims}, count(*) AS eligible FROM {work_table('eligibility')} e "
        f"JOIN {work_table('customers')} c ON c.party_id = e.party_id AND c.week_start = e.week_start "
        f"WHERE e.week_start = {sql_date(week.start)} AND c.status = '{ACTIVE}' GROUP BY e.product_id, {dims}"
    )


def _rate_counts(
    warehouse: WarehouseResource, week: Week, dimensions: tuple[str, ...], ranked: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Active customers per group and, per product, those with it in their top 3: counted in
    the warehouse per combination of group values (one GROUP BY each, a few thousand rows),
    then summed per dimension here, so neither the customers nor the top 3 leave it.
    `ranked`: another week's top 3 to count (a challenger's, simulate.py); the history's by default."""
    dims = ", ".join(f"c.{d}" for d in dimensions)
    active = f"(SELECT * FROM {week_slice(CUSTOMERS, week)} c WHERE status = '{ACTIVE}')"
    combos = warehouse.query(f"SELECT {dims}, count(*) AS customers FROM {active} c GROUP BY {dims}")
    # count(*): a product appears at most once in a customer's top 3 (ranks_1_to_n, blocking)
    hit_combos = warehouse.query(
        f"SELECT r.product_id, {dims}, count(*) AS recommended FROM {ranked or week_slice(HISTORY, week, 'party_id, product_id')} r "
        f"JOIN {active} c ON c.party_id = r.party_id GROUP BY r.product_id, {dims}"
    )
    sizes, hits = [], []
    for d in dimensions:
        sizes.append(
            combos.assign(dimension=d, group=fairness.group_labels(combos[d]))
            .groupby(["dimension", "group"], as_index=False)["customers"]
            .sum()
        )
        hits.append(
            hit_combos.assign(dimension=d, group=fairness.group_labels(hit_combos[d]))
            .groupby(["product_id", "dimension", "group"], as_index=False)["recommended"]
            .sum()
        )
    return pd.concat(sizes, ignore_index=True), pd.concat(hits, ignore_index=True)


def _history(warehouse: WarehouseResource, week: Week, gaps: pd.DataFrame, config: FairnessConfig):
    weeks = [(week.start - timedelta(weeks=k)).isoformat() for k in reversed(range(config.history_weeks))]
    current = gaps[["product_id", "dimension", "gap_pp", "breach"]].assign(week_start=pd.Timestamp(week.start))
    if warehouse.table_exists(REPORT_TABLE):
        earlier = warehouse.query(
            f"SELECT DISTINCT week_start, product_id, dimension, gap_pp, breach FROM {REPORT_TABLE} "
            f"WHERE week_start >= DATE '{weeks[0]}' AND week_start < {sql_date(week.start)}"
        )
        if len(earlier):
            current = pd.concat([earlier, current], ignore_index=True)
    history = fairness.gap_history(current, weeks)
    return weeks, history[history["dimension"].isin(config.dimensions)].reset_index(drop=True)


def _write_report(warehouse: WarehouseResource, df: pd.DataFrame, week: Week) -> None:
    if warehouse.table_exists(REPORT_TABLE):
        present = warehouse.column_names(REPORT_TABLE)
        missing = [c for c in df.columns if c.lower() not in present]
        if missing:  # a report table from before these columns: widen it, earlier weeks stay (empty there)
            old = warehouse.query(f"SELECT * FROM {REPORT_TABLE}")
            nullable = {"bool": "boolean", "int64": "Int64", "object": "string"}  # typed even when all empty
            for column in missing:
                old[column] = pd.Series(
                    None, index=old.index, dtype=nullable.get(str(df[column].dtype), df[column].dtype)
                )
            warehouse.replace_table(REPORT_TABLE, old)
    write_slice(warehouse, "fairness_report", df, week)


# What each breach's alert is, for the report's top table: (alert id, state, weeks it counts).
AlertStates = dict[tuple[str, str], tuple[int, str, int | str]]


def _states_of_run(outcome: outbox.RecordOutcome) -> AlertStates:
    """The alerts as this run's evaluation left them: new, relapsed, already open, or a
    resolved alert that had already counted the week."""
    state = {i: "new" for i in outcome.opened} | {i: "already open" for i in outcome.still_open}
    state |= {new: f"new, relapse after #{old}" for new, old in outcome.relapsed.items()}
    return {
        key: (alert_id, state.get(alert_id, "resolved earlier"), outcome.weeks_breached.get(alert_id, ""))
        for key, alert_id in outcome.alert_ids.items()
    }


def _states_in_outbox(url: str, week: Week) -> AlertStates:
    """The alerts that count the week as they now stand (a later run may have grown or
    resolved them); the newest alert of a product and dimension wins."""
    return {
        (a["product_id"], a["dimension"]): (a["alert_id"], a["status"], a["weeks_breached"])
        for a in workflow.alerts_of_week(url, week.start)
    }


def _alerts_table(alerts: list[dict], states: AlertStates) -> pd.DataFrame:
    rows = []
    for a in alerts:
        alert_id, state, weeks = states.get((a["product_id"], a["dimension"]), (None, "no alert", ""))
        rows.append(
            {
                "alert": f"#{alert_id} ({state})",
                "product": a["product_id"],
                "name": a.get("product_name") or "",
                "dimension": a["dimension"],
                "highest": f"{a['highest_group']} {a['highest_rate'] * 100:.1f}% of {a['highest_customers']}",
                "lowest": f"{a['lowest_group']} {a['lowest_rate'] * 100:.1f}% of {a['lowest_customers']}",
                "gap pp": render.pp(a["gap_pp"]),
                "gap 95% CI pp": f"{render.pp(a['gap_ci_low_pp'])} to {render.pp(a['gap_ci_high_pp'])}",
                "clear of uncertainty": "yes" if a["clear_breach"] else "no",
                "from ranking pp": render.pp(a["ranking_pp"]),
                "from eligibility pp": render.pp(a["eligibility_pp"]),
                "attributable to": a["attributable_to"],
                "weeks breached (alert)": weeks,
                "recent weeks breached": f"{a['weeks_breached']} of {a['weeks_reported']}",
            }
        )
    return pd.DataFrame(rows)


def _alert_payloads(
    gaps: pd.DataFrame,
    breaches: pd.DataFrame,
    history: pd.DataFrame,
    week: Week,
    model_version: str,
    threshold: float,
    run_id: str,
    names: dict,
) -> list[dict]:
    """One alert per stored breach of the week (fairness.breaches), told with the week's gap
    details and how many of the recent weeks breached."""
    counts = history.set_index(["product_id", "dimension"])[["weeks_breached", "weeks_reported"]]
    breaching = gaps.merge(breaches[["product_id", "dimension"]], on=["product_id", "dimension"])
    return [
        alert_payload(
            row,
            week.key,
            model_version,
            threshold,
            run_id,
            *counts.loc[(row["product_id"], row["dimension"])],
            str(report_path(week)),
            product_name=names.get(row["product_id"]),
        )
        for row in breaching.to_dict("records")
    ]


def _workflow_html(url: str, week: Week) -> str:
    alerts = workflow.alerts_of_week(url, week.start)
    return render.workflow_section(alerts, workflow.trail(url, [a["alert_id"] for a in alerts]), workflow.describe_step)


def _stored_gaps(rows: pd.DataFrame, config: FairnessConfig, threshold: float) -> pd.DataFrame:
    """A stored week's gap details (groups, intervals, attribution), computed again from its
    report rows; the breach and gap themselves are the stored ones."""
    columns = fairness.RATE_COLUMNS
    if rows[fairness.ELIGIBLE_COLUMNS].notna().all().all():  # absent from reports written before CON-006
        columns = columns + fairness.ELIGIBLE_COLUMNS
    details = fairness.fairness_gaps(rows[columns].reset_index(drop=True), threshold, config.min_group_size)
    stored = rows[["product_id", "dimension", "gap_pp", "breach"]].drop_duplicates(["product_id", "dimension"])
    return details.drop(columns=["gap_pp", "breach"]).merge(stored, on=["product_id", "dimension"])


def _refresh_later_reports(
    warehouse: WarehouseResource, url: str, week: Week, config: FairnessConfig, threshold: float, names: dict
) -> list[str]:
    """A backfilled (or re-run) week changes what every later report within its window
    says: the trend, and the alerts its breaches belong to (their weeks breached, first and
    latest week, status). Rewrite those sections of the later weeks' reports."""
    if not warehouse.table_exists(REPORT_TABLE):
        return []
    later = warehouse.query(
        f"SELECT DISTINCT week_start FROM {REPORT_TABLE} WHERE week_start > {sql_date(week.start)} "
        f"AND week_start < {sql_date(week.start + timedelta(weeks=config.history_weeks))} ORDER BY week_start"
    )
    refreshed = []
    for start in pd.to_datetime(later["week_start"]).dt.date:
        other = Week(start)
        rows = warehouse.query(f"SELECT * FROM {REPORT_TABLE} WHERE week_start = {sql_date(other.start)}")
        gaps = _stored_gaps(rows, config, threshold)
        weeks, history = _history(warehouse, other, gaps, config)
        alerts = _alert_payloads(
            gaps, breaches_of(rows), history, other, str(rows["model_version"].iloc[0]), threshold, "", names
        )
        note = f"Refreshed after week {week.key} was (re-)evaluated."
        sections = {
            render.BREACHES_SECTION: render.breaches_section(_alerts_table(alerts, _states_in_outbox(url, other))),
            render.WORKFLOW_SECTION: _workflow_html(url, other),
            render.TREND_SECTION: render.trend_section(history, weeks, threshold, names, note),
        }
        replaced = [render.replace_section(report_path(other), sid, html) for sid, html in sections.items()]
        if any(replaced):
            refreshed.append(other.key)
    return refreshed


def build_fairness_assets(weights: Weights, config: FairnessConfig | None = None) -> list[dg.AssetsDefinition]:
    model_version = weights.model_version
    config = config or fairness_config()
    contract = fairness_report_model(config.dimensions)
    dims_text = ", ".join(config.dimensions)
    threshold = config.threshold_pp
    severity = dg.AssetCheckSeverity.ERROR if config.blocks_publish else dg.AssetCheckSeverity.WARN
    publish_note = (
        "A failure also stops nbp_current from publishing the week (NBP_FAIRNESS_BLOCKS_PUBLISH=true)."
        if config.blocks_publish
        else "It does not stop nbp_current (NBP_FAIRNESS_BLOCKS_PUBLISH=false)."
    )

    @dg.asset(
        group_name=GROUP,
        partitions_def=weekly_partitions,
        pool=WEEKLY_POOL,
        deps=["nbp_ranked", "customers", RANKING_WEIGHTS],  # model_version on every row: stale when the weights change
        code_version=model_version,
        metadata={
            "table": REPORT_TABLE,
            "model_version": model_version,
            "dimensions": dims_text,
            "min_group_size": config.min_group_size,
        },
        check_specs=[
            checks.contract_spec("fairness_report", contract, weekly_partitions),
            checks.check_spec(
                checks.FAIRNESS_GAP,
                "fairness_report",
                blocking=config.blocks_publish,
                partitions_def=weekly_partitions,
                description=f"No product's recommendation rate differs by more than {threshold:g} percentage points "
                f"between the groups of {dims_text} with at least {config.min_group_size} customers (CON-001). "
                f"A failure is an nbp.fairness_breach alert, recorded in {outbox.ALERTS} and delivered to "
                f"compliance for model review. {publish_note}",
            ),
        ],
        kinds={"pandas", "pandera", "postgres"},
    )
    def fairness_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource, postgres: PostgresResource):
        """Weekly fairness review report (CON-001, CON-006): for every product, the share of
        active customers with it in their top 3 per group of each configured dimension
        (jurisdiction, age band and segment by default), with a 95% confidence interval,
        the rate among the customers eligible for it, and the gap between the highest and
        lowest group, split into the part due to eligibility and the part due to the
        ranking. Groups below the minimum size are listed, not judged. A gap above the threshold (10 points)
        is a breach: an nbp.fairness_breach alert in the compliance outbox. Also the gap of
        each product over the last weeks, and the whole report as an HTML file per week."""
        # The weights this run ranked with (production reads them when the run starts).
        model_version = weights.model_version
        with warehouse.session():  # one connection (DuckDB) or login (Snowflake) for the step
            started, week = time.perf_counter(), week_of(context)
            sizes, hits = _rate_counts(warehouse, week, config.dimensions)
            register = warehouse.query(f"SELECT product_id, product_name FROM {week_slice(PRODUCTS, week)} p")
            products, names = register["product_id"], dict(zip(register["product_id"], register["product_name"]))
            eligible = _eligible_counts(warehouse, week, config.dimensions)
            rates = fairness.rates_from_counts(sizes, hits, sorted(products), config.dimensions, eligible)
            gaps = fairness.fairness_gaps(rates, threshold, config.min_group_size)
            df = with_week(fairness.report_rows(rates, gaps, config.min_group_size), week)
            df["model_version"] = model_version
            yield from checks.gate("fairness_report", [checks.contract_result(contract, df, "fairness_report")])

            # The stored rows are the week's one source of breaches (fairness.breaches): the
            # check, the alerts, the HTML and the run summary all read them, so they agree.
            _write_report(warehouse, df, week)
            breaches = week_breaches(warehouse, week)
            weeks, history = _history(warehouse, week, gaps, config)
            html_path = report_path(week)
            alerts = _alert_payloads(gaps, breaches, history, week, model_version, threshold, context.run.run_id, names)
            # Recorded before the check is reported: a breach the UI shows always has its
            # alert, and a failure here fails the step visibly (a re-run rewrites the rows).
            # a gap that could not be measured (NaN in the frame) is None, as record_week declares
            gaps_now = {
                (r["product_id"], r["dimension"]): None if pd.isna(r["gap_pp"]) else r["gap_pp"]
                for r in gaps.to_dict("records")
            }
            url = postgres.conninfo()
            outcome = outbox.record_week(url, week.start, model_version, alerts, gaps_now, context.run.run_id)
            alerts_table = _alerts_table(alerts, _states_of_run(outcome))
            yield dg.AssetCheckResult(
                check_name=checks.FAIRNESS_GAP,
                passed=breaches.empty,
                severity=severity,
                description=f"no product over the {threshold:g} pp gap"
                if breaches.empty
                else f"nbp.fairness_breach: {len(breaches)} product/dimension gap(s) over {threshold:g} pp, "
                f"alert(s) {', '.join(f'#{i}' for i in outcome.alert_ids.values())} in {outbox.ALERTS}",
                metadata={
                    "breaches": len(breaches),
                    "model_version": model_version,
                    "alert_ids": dg.MetadataValue.json(sorted(outcome.alert_ids.values())),
                    "resolved_alert_ids": dg.MetadataValue.json(outcome.resolved),
                    "breach_table": dg.MetadataValue.md(render.markdown(alerts_table)),
                },
            )
            left_out = left_out_dimensions(config.dimensions)
            left_out_text = "; ".join(f"{d} ({why})" for d, why in left_out.items()) or "none"
            meta = {
                "week": week.key,
                "model_version": model_version,
                "dimensions judged": dims_text,
                "dimensions left out": left_out_text,
                "minimum group size": config.min_group_size,
                "threshold": f"{threshold:g} pp",
                "Dagster run": context.run.run_id,
                "alert outbox": outbox.ALERTS,
            }
            render.write_html(
                html_path,
                render.render_html(
                    meta, gaps, df, history, weeks, alerts_table, threshold, _workflow_html(url, week), names
                ),
            )
            refreshed = _refresh_later_reports(warehouse, url, week, config, threshold, names)
            yield dg.MaterializeResult(
                metadata={
                    **common_metadata(week, len(df), REPORT_TABLE, started),
                    "model_version": model_version,
                    "breaches": len(breaches),
                    "alerts": dg.MetadataValue.md(render.markdown(alerts_table)),
                    "resolved_alerts": dg.MetadataValue.json(outcome.resolved),
                    "gap_chart": dg.MetadataValue.md(
                        render.md_image(
                            render.gap_chart_svg(gaps, threshold, f"Gap per product and dimension, week {week.key}"),
                            "gap chart",
                        )
                    ),
                    "gaps": dg.MetadataValue.md(
                        render.markdown(
                            render.gaps_table(gaps.sort_values("gap_pp", ascending=False, kind="stable"), names)
                        )
                    ),
                    "gap_history": dg.MetadataValue.md(render.markdown(render.history_table(history, weeks, names))),
                    "rates": dg.MetadataValue.md(render.markdown(render.rates_table(df, names))),
                    "dimensions_judged": dims_text,
                    "dimensions_left_out": left_out_text,
                    "later_reports_refreshed": dg.MetadataValue.json(refreshed),
                    "unjudged_groups": int((~df["judged"]).sum()),
                    "report_html": dg.MetadataValue.path(str(html_path)),
                }
            )

    return [fairness_report]
