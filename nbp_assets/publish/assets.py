"""The publish of the week to the apps, as an asset: nbp_current in PostgreSQL.

nbp_ranked's history rows of the week are streamed out of the warehouse and swapped into
product_intelligence.nbp_current (publish/postgres.py); this module only wires that to the
week, its contract check and the run's metadata.
"""

import time

import dagster as dg

from nbp_assets.contract import assets as models
from nbp_assets.contract.tables import HISTORY, PRODUCTS
from nbp_assets.core.postgres_resource import PostgresResource
from nbp_assets.core.sql import render
from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.fairness.config import fairness_config
from nbp_assets.fairness.guard import publish_blocked_reason
from nbp_assets.publish.control import ControlGroup
from nbp_assets.publish.control import counts as control_counts
from nbp_assets.publish.control import prepare as prepare_control
from nbp_assets.publish.control import record as record_control
from nbp_assets.simulation.approve import approval_gate
from nbp_assets.weekly import checks
from nbp_assets.weekly.assets import Step, in_session, weekly_spec
from nbp_assets.weekly.io import common_metadata, count_rows, week_filter, week_of, week_slice
from nbp_assets.weekly.weights import Weights
from nbp_assets.weekly.weights_asset import RANKING_WEIGHTS

PUBLISHED_TABLE = "product_intelligence.nbp_current"


@in_session
def nbp_current_step(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    postgres: PostgresResource,
    model_version: str,
    fairness_blocks_publish: bool,
) -> Step:
    """The current week's top 3 per customer in PostgreSQL (product_intelligence.nbp_current),
    read by the offer engine (MOD-108), agent assist (MOD-083) and app insight cards
    (MOD-077). Streamed from the warehouse history and replaced atomically: readers see the
    previous week or this one, never a mix or an empty table. A backfill of an older week
    never replaces a newer one. With a control group (NBP_CONTROL_GROUP_SHARE), its held-out
    customers are recorded in nbp_work.control_group and left out of nbp_current."""
    from nbp_assets.publish import postgres as pg

    started, week = time.perf_counter(), week_of(context)
    control = ControlGroup.from_settings()
    held_out = treated = held_out_ranked = None
    if prepare_control(warehouse, control):
        # Recorded before anything can stop the publish: the week is ranked and stored
        # as usual, and who was held out is part of that record.
        with warehouse.transaction() as tx:
            held_out = record_control(tx, week, control)
            ranked, held_out_ranked = control_counts(tx, week_slice(HISTORY, week, "party_id"), week)
            treated = ranked - held_out_ranked
        context.log.info(
            f"control group: {held_out:,} active customers held out (share {control.share:g}), "
            f"{held_out_ranked:,} of them ranked; {treated:,} ranked customers published"
        )
    if fairness_blocks_publish and (blocked := publish_blocked_reason(warehouse, week, model_version)):
        raise dg.Failure(description=blocked, metadata={"published": False})
    approval = approval_gate(warehouse, model_version, context.log)  # NBP_REQUIRE_APPROVAL: docs/governance.md
    rows = count_rows(warehouse, week_slice(HISTORY, week))
    with warehouse.transaction() as tx:
        contract = checks.contract_in_warehouse(tx, HISTORY, week_filter(HISTORY, week), rows, models.NbpCurrentAsset)
    yield from checks.gate("nbp_current", [contract])
    context.log.info(f"publishing {rows:,} rows to {postgres.describe()}, streamed from the warehouse")
    batches = warehouse.record_batches(
        # In storage order, which nbp_ranked made the key's order (see week_rows.sql).
        render(
            "publish", "week_rows", history=HISTORY.name, week=week_filter(HISTORY, week), **control.week_rows_params()
        ).text
    )
    products = warehouse.query(
        render("core", "select", columns=", ".join(pg.PRODUCT_COLUMNS), relation=week_slice(PRODUCTS, week)).text
    )
    result = pg.publish_current(postgres.conninfo(), batches, week.evaluated_at, products=products)
    context.log.info(f"nbp_current: {result.reason}")
    metadata = {
        **common_metadata(week, rows, PUBLISHED_TABLE, started),
        "published": result.published,
        "outcome": result.reason,
        "current_week_before": pg.week_key(result.previous_evaluated_at) if result.previous_evaluated_at else "none",
        "publish_seconds": round(result.seconds, 2),
        **{k: getattr(result, k) for k in ("lock_wait_seconds", "lock_retries") if hasattr(result, k)},
        "model_version": model_version,
        "approval": approval,
        "postgres": postgres.describe(),
        "control_group_share": control.share,
        **(
            {"treated_customers": treated, "held_out_customers": held_out, "held_out_ranked": held_out_ranked}
            if control.on
            else {}
        ),
    }
    if not result.published:
        # The UI takes nbp_current's latest materialization for the week the apps see: a week
        # that was not published (a backfill of an older week) is recorded as an observation.
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, partition=week.key, metadata=metadata))
        return
    yield dg.MaterializeResult(metadata=metadata)


def build_publish_asset(weights: Weights) -> dg.AssetsDefinition:
    """nbp_current, for one weights configuration: it carries that model_version, depends on
    nbp_ranked and the weights, and (NBP_FAIRNESS_BLOCKS_PUBLISH) on the week's fairness check."""
    model_version = weights.model_version
    ControlGroup.from_settings()  # a bad NBP_CONTROL_GROUP_* fails when the definitions load
    blocks_publish = fairness_config().blocks_publish
    spec = weekly_spec(
        "nbp_current",
        HISTORY,
        models.NbpCurrentAsset,
        nbp_current_step,
        deps=["nbp_ranked", RANKING_WEIGHTS, *(["fairness_report"] if blocks_publish else [])],
        code_version=model_version,
        model_version=model_version,
    )
    spec["metadata"]["dagster/table_name"] = f"postgres: {PUBLISHED_TABLE}"
    spec["metadata"].pop("key")
    spec["kinds"] = {"postgres"}
    spec["output_required"] = False  # a week not published is observed, not materialized

    @dg.asset(**spec)
    def nbp_current(context: dg.AssetExecutionContext, warehouse: WarehouseResource, postgres: PostgresResource):
        yield from nbp_current_step(context, warehouse, postgres, model_version, blocks_publish)

    return nbp_current
