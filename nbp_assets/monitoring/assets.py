"""Outcome monitoring and drift of the weekly model: the offer_outcomes and model_drift assets.

Wiring only: the maths is in monitoring/model.py, the queries in monitoring/sql/*.sql. Both
read what the week already wrote (nbp_work, the history) and MOD-108's offer_history, and
write one small slice per week.
"""

import time

import dagster as dg
import pandas as pd

from nbp_assets.contract.assets import ControlOutcomesAsset, ModelDriftAsset, OfferOutcomesAsset
from nbp_assets.contract.tables import CONTROL_GROUP, CONTROL_OUTCOMES, CUSTOMERS, ELIGIBILITY, HISTORY, SCORES, SIGNALS
from nbp_assets.core import settings
from nbp_assets.core.partitions import Week, weekly_partitions
from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.fairness.config import fairness_config
from nbp_assets.monitoring import control as control_group
from nbp_assets.monitoring import model as monitoring
from nbp_assets.ops import alerts as ops_alerts
from nbp_assets.sources import week_inputs as src
from nbp_assets.weekly import checks
from nbp_assets.weekly.io import (
    GROUP,
    WEEKLY_POOL,
    common_metadata,
    count_rows,
    week_filter,
    week_of,
    week_slice,
    with_week,
    work_table,
    write_slice,
)

OUTCOMES_TABLE = work_table("offer_outcomes")
DRIFT_TABLE = work_table("model_drift")
SIGNAL_DRIFT = "signal_means_stable"
SCORE_DRIFT = "score_quantiles_stable"
NO_ELIGIBLE_DRIFT = "no_eligible_product_share_stable"
SIGNAL_PSI_DRIFT = "signal_distributions_stable"
SCORE_PSI_DRIFT = "score_distribution_stable"
OUTCOME_GAP = "acceptance_gap_within_threshold"
# A failed drift check names its drifted metrics in metadata DRIFTED_METRICS: the ops alert
# sensor (ops/sensors.py) records one operations alert per week and metric from it.
DRIFTED_METRICS = ops_alerts.DRIFTED_METRICS
_MEAN_CHECKS = {
    SIGNAL_DRIFT: (
        "signal_mean",
        f"No signal's mean moved by more than {monitoring.SIGNAL_MEAN_DRIFT:g} since the previous week.",
    ),
    SCORE_DRIFT: (
        "score_quantile",
        f"The score's 10/50/90 % quantiles moved by at most "
        f"{monitoring.SCORE_QUANTILE_DRIFT:g} since the previous week.",
    ),
    NO_ELIGIBLE_DRIFT: (
        "no_eligible_share",
        f"The share of active customers without an eligible product moved by "
        f"at most {monitoring.NO_ELIGIBLE_SHARE_DRIFT * 100:g} points.",
    ),
}


def drift_checks(psi_warn: float) -> dict[str, tuple[str, str]]:
    """check name -> (kind of model_drift row it judges, what passing means)."""
    against = "the previous week and the week its model_version was approved"
    return {
        **_MEAN_CHECKS,
        SIGNAL_PSI_DRIFT: (
            "signal_psi",
            f"No signal's distribution (PSI over {monitoring.PSI_BINS} bins of [0, 1]) moved by more than "
            f"{psi_warn:g} (NBP_DRIFT_PSI_WARN) since {against}.",
        ),
        SCORE_PSI_DRIFT: (
            "score_psi",
            f"The score's distribution (PSI over {monitoring.PSI_BINS} bins of [0, 1]) moved by at most "
            f"{psi_warn:g} (NBP_DRIFT_PSI_WARN) since {against}.",
        ),
    }


def outcome_gap_text(threshold_pp: float) -> str:
    return (
        f"In no fairness dimension did two groups (each offered at least NBP_FAIRNESS_MIN_GROUP times) "
        f"accept at rates more than {threshold_pp:g} pp (NBP_OUTCOME_GAP_WARN_PP) apart, beyond noise "
        "(Newcombe's 95% interval of the difference excluding 0)."
    )


def outcome_gap_result(gaps: pd.DataFrame, threshold_pp: float) -> dg.AssetCheckResult:
    """The WARN check of offer_outcomes: fails on a clear acceptance gap above the threshold,
    naming one metric per dimension (acceptance_gap_<dimension>) for nbp_ops_alert_sensor."""
    flagged = monitoring.gap_warnings(gaps, threshold_pp)
    return dg.AssetCheckResult(
        check_name=OUTCOME_GAP,
        passed=not flagged,
        severity=dg.AssetCheckSeverity.WARN,
        description=outcome_gap_text(threshold_pp)
        if not flagged
        else "; ".join(f"{d['dimension']}: {d['groups']} accepted {d['value']:g} pp apart" for d in flagged.values()),
        metadata={
            "gaps": dg.MetadataValue.md(gaps.to_markdown(index=False)),
            DRIFTED_METRICS: dg.MetadataValue.json(flagged),
        },
    )


def offer_outcomes_step(context, warehouse: WarehouseResource):
    """How customers answered the offers made during the week (MOD-108 offer_history):
    acceptance and rejection rates with 95% intervals by product, rank, primary_signal,
    model_version of the recommendation the offer followed, and by each fairness dimension
    (did one group accept less of what it was offered?). With a control group, acceptance of
    treated against held-out customers per product, with intervals and their difference
    (nbp_work.control_outcomes)."""
    started, week = time.perf_counter(), week_of(context)
    config, gap_warn = fairness_config(), settings.outcome_gap_warn_pp()
    with warehouse.session():
        offers = checks.fail_on_violation(lambda: src.offers_made(warehouse, week))
        current_then = Week.from_key(monitoring.previous_week(week.start).isoformat())  # published at the week's start
        ranked = (
            week_slice(HISTORY, current_then, "party_id, product_id, rank, primary_signal, model_version")
            if warehouse.table_exists(HISTORY.name)
            else monitoring.no_ranking_sql()
        )
        # The control group's record: kept (possibly empty) once a group was ever on.
        recorded = warehouse.table_exists(CONTROL_GROUP.name) and warehouse.table_exists(HISTORY.name)
        held_out = week_slice(CONTROL_GROUP, current_then, "party_id") if recorded else None
        # The held-out customers' rows were stored, not published: their offers followed no recommendation.
        published = control_group.published_ranking_sql(ranked, held_out) if recorded else ranked
        made = monitoring.offers_sql(
            offers, published, week_slice(CUSTOMERS, week), week.start, week.evaluation_date, config.dimensions
        )
        groupings = list(dict.fromkeys((*monitoring.BY_MODEL, *config.dimensions)))
        counts = warehouse.query(monitoring.outcome_counts_sql(made, groupings))
        arms = None
        if recorded:  # a week without a group (off then) writes an empty comparison
            grouped = count_rows(warehouse, held_out) > 0
            arms = (
                warehouse.query(control_group.control_arms_sql(made, ranked, held_out)) if grouped else pd.DataFrame()
            )
    rates = monitoring.outcome_rates(counts)
    gaps = monitoring.acceptance_gaps(rates, config.dimensions, config.min_group_size)
    table = with_week(rates.copy(), week)
    contract = checks.contract_result(OfferOutcomesAsset, table, OUTCOMES_TABLE)
    comparison = control_group.comparison(arms) if arms is not None else None
    if comparison is not None and contract.passed:  # one contract check covers both tables
        contract = checks.contract_result(
            ControlOutcomesAsset, with_week(comparison.copy(), week), CONTROL_OUTCOMES.name
        )
    yield from checks.gate("offer_outcomes", [contract])
    rows = write_slice(warehouse, "offer_outcomes", table, week)
    control_metadata = {}
    if comparison is not None:
        warehouse.replace_slice(
            CONTROL_OUTCOMES.name,
            with_week(comparison.copy(), week),
            where=week_filter(CONTROL_OUTCOMES, week),
            ddl=CONTROL_OUTCOMES.ddl_template(),
        )
        control_metadata = {
            "control_group_week": current_then.key,
            "treated_vs_held_out": dg.MetadataValue.md(comparison.to_markdown(index=False)),
        }
    offered = int(rates.loc[rates["by"] == "product_id", "offered"].sum())
    accepted = int(rates.loc[rates["by"] == "product_id", "accepted"].sum())
    yield outcome_gap_result(gaps, gap_warn)
    yield dg.MaterializeResult(
        metadata={
            **common_metadata(week, rows, OUTCOMES_TABLE, started),
            "offers": offered,
            "acceptance_rate": round(accepted / offered, 4) if offered else 0.0,
            "acceptance_gap_by_dimension": dg.MetadataValue.md(gaps.to_markdown(index=False)),
            "by_rank": dg.MetadataValue.md(rates[rates["by"] == "rank"].to_markdown(index=False)),
            **control_metadata,
        }
    )


def _metrics(warehouse: WarehouseResource, week: Week):
    if count_rows(warehouse, week_slice(SIGNALS, week)) == 0:
        return None
    active = monitoring.active_parties_sql(week_slice(CUSTOMERS, week))
    return warehouse.query(
        monitoring.drift_metrics_sql(
            week_slice(SIGNALS, week), week_slice(SCORES, week), active, week_slice(ELIGIBILITY, week)
        )
    ).iloc[0]


def approval_baseline_week(warehouse: WarehouseResource, week: Week) -> tuple[str | None, Week | None]:
    """(this week's model_version, the week it was approved), the distributions' second baseline.

    Until the model registry records approvals, the approval week is the FIRST WEEK THE
    model_version SCORED: the earliest week of nbp_work.scores with it, this week at the
    latest (monitoring/sql/approval_week.sql). This is the one function to change when the
    registry exists: return the registry's approval week of the model_version instead."""
    row = warehouse.query(monitoring.approval_week_sql(SCORES.name, week_slice(SCORES, week), week.start)).iloc[0]
    if row["model_version"] is None or pd.isna(row["approval_week"]):
        return None, None
    return str(row["model_version"]), Week.from_key(pd.Timestamp(row["approval_week"]).date().isoformat())


def _distributions(warehouse: WarehouseResource, week: Week, baselines: dict[str, Week], threshold: float):
    """model_drift rows of the PSI of each signal and the score against each baseline with signals."""
    present = {name: w for name, w in baselines.items() if count_rows(warehouse, week_slice(SIGNALS, w)) > 0}
    if not present:
        return monitoring.psi_table(pd.DataFrame(columns=["baseline", "metric", "psi"]), threshold)
    psi = warehouse.query(
        monitoring.psi_sql(
            week_slice(SIGNALS, week),
            week_slice(SCORES, week),
            {name: (week_slice(SIGNALS, w), week_slice(SCORES, w)) for name, w in present.items()},
        )
    )
    return monitoring.psi_table(psi, threshold)


def _named(drifted: pd.DataFrame, before_week: Week, baselines: dict[str, Week]) -> dict[str, dict]:
    """{metric: baseline week, value, threshold} of the drifted rows (an alert's facts)."""
    named = {}
    for row in drifted.to_dict("records"):
        psi = row["kind"].endswith("_psi")
        baseline = baselines[row["metric"].rsplit("_vs_", 1)[1]] if psi else before_week
        named[row["metric"]] = {
            "baseline": f"week {baseline.key}" + (f" ({row['metric'].rsplit('_vs_', 1)[1]})" if psi else ""),
            "value": round(float(row["value"]), 6),
            "threshold": float(row["threshold"]),
        }
    return named


def model_drift_step(context, warehouse: WarehouseResource):
    """Drift of the model: each signal's mean, the score's 10/50/90 % quantiles and the share
    of active customers without an eligible product against the previous week; and each
    signal's and the score's whole distribution (population stability index) against the
    previous week and the week the model_version was approved (NBP_DRIFT_PSI_WARN), with the
    thresholds of docs/monitoring.md. A drift is a warning, not a stop: the week's ranking is
    already checked and published; nbp_ops_alert_sensor tells operations, once per week and metric."""
    started, week = time.perf_counter(), week_of(context)
    psi_warn = settings.drift_psi_warn()
    before_week = Week.from_key(monitoring.previous_week(week.start).isoformat())
    with warehouse.session():
        now = _metrics(warehouse, week)
        if now is None:
            raise dg.Failure(description=f"week {week.key} has no signals in {SIGNALS.name}: run the week first")
        before = _metrics(warehouse, before_week)
        model_version, approved = approval_baseline_week(warehouse, week)
        baselines = {monitoring.PREVIOUS: before_week}
        if approved is not None and approved.key != week.key:
            baselines[monitoring.APPROVAL] = approved
        distributions = _distributions(warehouse, week, baselines, psi_warn)
    table = monitoring.drift_table(now, before)
    if not distributions.empty:  # a first week (nothing earlier with signals) has no distribution rows
        table = pd.concat([table, distributions], ignore_index=True)
    written = with_week(table.copy(), week)
    yield from checks.gate("model_drift", [checks.contract_result(ModelDriftAsset, written, DRIFT_TABLE)])
    rows = write_slice(warehouse, "model_drift", written, week)
    for check, (kind, text) in drift_checks(psi_warn).items():
        mine = table[table["kind"] == kind]
        drifted = mine[mine["drifted"]]
        judged = bool(mine["value"].notna().any()) if kind.endswith("_psi") else before is not None
        yield dg.AssetCheckResult(
            check_name=check,
            passed=drifted.empty,
            severity=dg.AssetCheckSeverity.WARN,
            description=(text if judged else f"{text} (no earlier week to compare with)")
            if drifted.empty
            else f"{len(drifted)} metric(s) drifted: " + ", ".join(drifted["metric"]),
            metadata={
                "metrics": dg.MetadataValue.md(mine.to_markdown(index=False)),
                DRIFTED_METRICS: dg.MetadataValue.json(_named(drifted, before_week, baselines)),
            },
        )
    yield dg.MaterializeResult(
        metadata={
            **common_metadata(week, rows, DRIFT_TABLE, started),
            "previous_week": before_week.key if before is not None else "none",
            "model_version": model_version or "none",
            # until the model registry exists: the first week the model_version scored
            "approval_week": approved.key if approved is not None else "none",
            "approval_week_rule": "first week the model_version scored (no model registry yet)",
            "psi_threshold": psi_warn,
            "drifted": int(table["drifted"].sum()),
            "drift": dg.MetadataValue.md(table.to_markdown(index=False)),
        }
    )


def build_monitoring_assets() -> list[dg.AssetsDefinition]:
    # Read when the code location loads: a bad NBP_DRIFT_PSI_WARN fails the load, one line naming it.
    drift_specs = drift_checks(settings.drift_psi_warn())
    gap_text = outcome_gap_text(settings.outcome_gap_warn_pp())  # likewise NBP_OUTCOME_GAP_WARN_PP
    common = dict(group_name=GROUP, partitions_def=weekly_partitions, pool=WEEKLY_POOL, kinds={"sql", "pandas"})

    @dg.asset(
        name="offer_outcomes",
        deps=["nbp_ranked", "customers"],
        description=offer_outcomes_step.__doc__,
        metadata={"dagster/table_name": OUTCOMES_TABLE},
        check_specs=[
            checks.contract_spec("offer_outcomes", OfferOutcomesAsset, weekly_partitions),
            checks.check_spec(
                OUTCOME_GAP, "offer_outcomes", gap_text, blocking=False, partitions_def=weekly_partitions
            ),
        ],
        **common,
    )
    def offer_outcomes(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        yield from offer_outcomes_step(context, warehouse)

    @dg.asset(
        name="model_drift",
        deps=["signals", "scores", "eligibility", "customers"],
        description=model_drift_step.__doc__,
        metadata={"dagster/table_name": DRIFT_TABLE},
        check_specs=[
            checks.contract_spec("model_drift", ModelDriftAsset, weekly_partitions),
            *(
                checks.check_spec(name, "model_drift", text, blocking=False, partitions_def=weekly_partitions)
                for name, (_, text) in drift_specs.items()
            ),
        ],
        **common,
    )
    def model_drift(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        yield from model_drift_step(context, warehouse)

    return [offer_outcomes, model_drift]
