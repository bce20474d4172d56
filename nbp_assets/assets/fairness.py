"""CON-001 fairness monitoring of the weekly ranking: the fairness_report asset and its check."""

import time

import dagster as dg

from nbp_assets.assets import checks
from nbp_assets.assets.engine import (
    GROUP,
    PARTITION_EXPR,
    _common_metadata,
    _read_slice,
    _week,
    _with_week,
    _work,
    _write,
)
from nbp_assets.contract import assets as models
from nbp_assets.model import fairness
from nbp_assets.model.eligibility import active_customers
from nbp_assets.model.weights import Weights
from nbp_assets.partitions import weekly_partitions
from nbp_assets.sources import week_inputs as src
from nbp_assets.storage.warehouse import HISTORY_TABLE, WarehouseResource, sql_date


def build_fairness_assets(weights: Weights) -> list[dg.AssetsDefinition]:
    model_version = weights.model_version

    @dg.asset(
        group_name=GROUP,
        partitions_def=weekly_partitions,
        deps=["nbp_ranked", "customers"],
        code_version=model_version,
        metadata={"partition_expr": PARTITION_EXPR, "table": _work("fairness_report"), "model_version": model_version},
        check_specs=[
            checks.contract_spec("fairness_report", models.FairnessReportAsset),
            dg.AssetCheckSpec(
                checks.FAIRNESS_GAP, asset="fairness_report", blocking=False,
                description="No product's recommendation rate differs by more than 10 percentage points "
                "between groups of a jurisdiction, age band or segment (CON-001). A failure is an "
                "nbp.fairness_breach for compliance review.",
            ),
        ],
        kinds={"pandas", "pandera"},
    )
    def fairness_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        """Weekly fairness report (CON-001): for every product, the share of active customers
        with it in their top 3, per jurisdiction, age band and segment, and the largest gap
        between groups in percentage points. A gap above 10 points is a fairness breach."""
        started, week = time.perf_counter(), _week(context)
        people = active_customers(_read_slice(warehouse, "customers", week))
        ranked = warehouse.query(
            f"SELECT party_id, product_id FROM {HISTORY_TABLE} WHERE evaluated_at = {sql_date(week.evaluated_at)}"
        )
        products = checks.fail_on_violation(lambda: src.products(warehouse, week))
        rates = fairness.recommendation_rates(people, ranked, sorted(products["product_id"]))
        gaps = fairness.fairness_gaps(rates)
        df = rates.merge(gaps[["product_id", "dimension", "gap_pp", "breach"]], on=["product_id", "dimension"])
        df["group"] = df["group"].astype(str)
        df = _with_week(df, week)
        breaches = gaps[gaps["breach"]]
        gap_check = dg.AssetCheckResult(
            check_name=checks.FAIRNESS_GAP,
            passed=breaches.empty,
            severity=dg.AssetCheckSeverity.WARN,
            description="no product over the 10 pp gap" if breaches.empty
            else f"nbp.fairness_breach: {len(breaches)} product/dimension gap(s) over 10 pp",
            metadata={
                "breaches": len(breaches),
                "model_version": model_version,
                "breach_table": dg.MetadataValue.md(breaches.to_markdown(index=False) if len(breaches) else "none"),
            },
        )
        yield from checks.gate("fairness_report", [checks.contract_result(models.FairnessReportAsset, df, "fairness_report"), gap_check])
        _write(warehouse, "fairness_report", df, week)
        yield dg.MaterializeResult(
            metadata={
                **_common_metadata(week, df, _work("fairness_report"), started),
                "model_version": model_version,
                "breaches": len(breaches),
                "largest_gaps": dg.MetadataValue.md(
                    gaps.sort_values("gap_pp", ascending=False).head(10).to_markdown(index=False)
                ),
            }
        )

    return [fairness_report]
