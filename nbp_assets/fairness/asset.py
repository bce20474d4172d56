"""CON-001 fairness monitoring of the weekly ranking: the fairness_report asset and its check.

Wiring only, one module-level step (like weekly/assets.py's steps): compute.py reads the
week's counts from the warehouse and applies the maths (maths.py); record.py gates and
writes the report rows; alert.py makes the alerts and records them in the compliance
outbox (alerts/outbox.py); review.py writes the HTML report (rendered by report.py),
the UI's metadata, and refreshes the later weeks' reports.
"""

import time
from typing import Iterator

import dagster as dg
import pandas as pd

from nbp_assets.alerts import outbox
from nbp_assets.core.partitions import weekly_partitions
from nbp_assets.core.postgres_resource import PostgresResource
from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.fairness import alert, compute, record, review
from nbp_assets.fairness import report as render
from nbp_assets.fairness.breaches import week_breaches
from nbp_assets.fairness.config import FairnessConfig, fairness_config
from nbp_assets.fairness.contract import REPORT_TABLE, fairness_report_model
from nbp_assets.weekly import checks, registry
from nbp_assets.weekly.io import GROUP, WEEKLY_POOL, week_of
from nbp_assets.weekly.weights import Weights
from nbp_assets.weekly.weights_asset import RANKING_WEIGHTS

Step = Iterator[dg.AssetCheckResult | dg.MaterializeResult]


def gap_check(
    breaches: pd.DataFrame, outcome: outbox.RecordOutcome, alerts_table: pd.DataFrame, model_version: str, config
) -> dg.AssetCheckResult:
    """The CON-001 check's result: passed when the week's stored rows have no breach."""
    threshold = config.threshold_pp
    return dg.AssetCheckResult(
        check_name=checks.FAIRNESS_GAP,
        passed=breaches.empty,
        severity=dg.AssetCheckSeverity.ERROR if config.blocks_publish else dg.AssetCheckSeverity.WARN,
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


def fairness_report_step(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    postgres: PostgresResource,
    weights: Weights,
    config: FairnessConfig,
) -> Step:
    """The week's fairness report: computed, gated and written, its breaches alerted and
    checked, its HTML written and the later weeks' reports refreshed."""
    # The weights this run ranked with (production reads them when the run starts).
    model_version, run_id = weights.model_version, context.run.run_id
    with warehouse.session():  # one connection (DuckDB) or login (Snowflake) for the step
        started, week = time.perf_counter(), week_of(context)
        computed = compute.week_fairness(warehouse, week, config)
        df = compute.report_frame(computed, week, model_version, config)
        yield from record.gate(fairness_report_model(config.dimensions, config.intersections), df)

        # The stored rows are the week's one source of breaches (fairness.breaches): the
        # check, the alerts, the HTML and the run summary all read them, so they agree.
        record.write_report(warehouse, df, week)
        breaches = week_breaches(warehouse, week)
        weeks, history = record.gap_history(warehouse, week, computed.gaps, config)
        alerts = alert.alert_payloads(
            computed.gaps,
            breaches,
            history,
            week,
            model_version,
            config.threshold_pp,
            run_id,
            computed.names,
            str(review.report_path(week)),
        )
        # Recorded before the check is reported: a breach the UI shows always has its
        # alert, and a failure here fails the step visibly (a re-run rewrites the rows).
        url = postgres.conninfo()
        outcome = alert.record_breaches(url, week, model_version, alerts, computed.gaps, run_id)
        alerts_table = render.alerts_table(alerts, alert.states_of_run(outcome))
        yield gap_check(breaches, outcome, alerts_table, model_version, config)
        evaluated = review.Evaluated(week, model_version, run_id, computed, df, weeks, history, alerts_table)
        approval = registry.approval_of(warehouse, model_version)  # who approved the model shown
        review.write_html(evaluated, config, url, approval)
        refreshed = review.refresh_later_reports(warehouse, url, week, config, computed.names)
        metadata = review.materialization_metadata(evaluated, config, len(breaches), outcome, refreshed, started)
        yield dg.MaterializeResult(metadata={**metadata, "approval": approval})


def build_fairness_assets(weights: Weights, config: FairnessConfig | None = None) -> list[dg.AssetsDefinition]:
    model_version = weights.model_version
    config = config or fairness_config()
    contract = fairness_report_model(config.dimensions, config.intersections)
    dims_text = ", ".join(config.judged)
    threshold = config.threshold_pp
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
        (jurisdiction, age band and segment by default) and of each configured intersection
        of two dimensions (NBP_FAIRNESS_INTERSECTIONS), with a 95% confidence interval,
        the rate among the customers eligible for it, and the gap between the highest and
        lowest group, split into the parts due to eligibility, to suitability (MOD-040,
        nbp_work.withheld) and to the ranking, and the customers withheld for unknown
        health. Groups below the minimum size are listed, not judged. A gap above the threshold (10 points)
        is a breach: an nbp.fairness_breach alert in the compliance outbox. Also the gap of
        each product over the last weeks, and the whole report as an HTML file per week."""
        yield from fairness_report_step(context, warehouse, postgres, weights, config)

    return [fairness_report]
