"""MOD-107 weekly next-best-product engine as software-defined assets.

customers -> eligibility -> signals -> scores -> nbp_ranked -> nbp_current
activity (the week's events, checked and kept per week; the next-best-offer assets read the same landing table in micro-batches)
fairness_report lives in assets/fairness.py.
Every asset is partitioned by bank week (see partitions.py). Assets only wire the model
in nbp_assets.model to storage; business logic lives there.
"""


import time

import dagster as dg
import pandas as pd

from nbp_assets.alerts.config import fairness_config
from nbp_assets.alerts.guard import publish_blocked_reason
from nbp_assets.assets import checks
from nbp_assets.assets.weekly_io import (
    GROUP,
    PARTITION_EXPR,
    WEEKLY_POOL,
    common_metadata,
    preview,
    read_history,
    read_slice,
    week_of,
    with_week,
    work_table,
    write_slice,
)
from nbp_assets.contract import assets as models
from nbp_assets.model import invariants
from nbp_assets.model.eligibility import active_customers, eligible_candidates
from nbp_assets.model.ranking import score_candidates, top_products
from nbp_assets.model.signals import WeekInputs, compute_signals
from nbp_assets.model.weights import ALL_SIGNALS, MODEL_CODE_VERSION, Weights
from nbp_assets.partitions import weekly_partitions
from nbp_assets.sources import week_inputs as src
from nbp_assets.storage.postgres_resource import PostgresResource
from nbp_assets.storage.warehouse import HISTORY_DDL, HISTORY_KEY, HISTORY_TABLE, WarehouseResource, sql_date


def build_engine_assets(weights: Weights) -> list[dg.AssetsDefinition]:
    """The weekly engine's assets (fairness_report aside), governed by one weights
    configuration and its model_version."""
    model_version = weights.model_version
    fairness_blocks_publish = fairness_config().blocks_publish

    @dg.asset(
        group_name=GROUP,
        partitions_def=weekly_partitions,
        pool=WEEKLY_POOL,
        metadata={"partition_expr": PARTITION_EXPR, "table": work_table("customers")},
        check_specs=[checks.contract_spec("customers", models.CustomersAsset)],
        kinds={"pandas", "pandera"},
    )
    def customers(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        """Every customer as the bank knew them at the close of the week (customer master,
        versioned): party, jurisdiction, segment, age band, gender, status, income and FICO.
        Only ACTIVE customers receive next-best-product recommendations."""
        started, week = time.perf_counter(), week_of(context)
        df = checks.fail_on_violation(lambda: src.customers(warehouse, week))
        df = with_week(df[[c for c in models.CustomersAsset.to_schema().columns if c != "week_start"]], week)
        yield from checks.gate("customers", [checks.contract_result(models.CustomersAsset, df, "customers")])
        write_slice(warehouse, "customers", df, week)
        yield dg.MaterializeResult(
            metadata={
                **common_metadata(week, df, work_table("customers"), started),
                "by_status": dg.MetadataValue.json(df["status"].value_counts().sort_index().to_dict()),
                "active_customers": int((df["status"] == "ACTIVE").sum()),
            }
        )

    @dg.asset(
        group_name=GROUP,
        partitions_def=weekly_partitions,
        pool=WEEKLY_POOL,
        metadata={"partition_expr": PARTITION_EXPR, "table": work_table("activity")},
        check_specs=[checks.contract_spec("activity", models.ActivityAsset)],
        kinds={"pandas", "pandera"},
    )
    def activity(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        """Customer activity events of the week (branch visits, deposits, app and web opens,
        new accounts, FX and card payments) with their propensity to buy: the stream the
        next-best-offer recipe reacts to."""
        started, week = time.perf_counter(), week_of(context)
        df = with_week(checks.fail_on_violation(lambda: src.activity(warehouse, week)), week)
        yield from checks.gate("activity", [checks.contract_result(models.ActivityAsset, df, "activity")])
        write_slice(warehouse, "activity", df, week)
        yield dg.MaterializeResult(
            metadata={
                **common_metadata(week, df, work_table("activity"), started),
                "by_activity_type": dg.MetadataValue.json(df["activity_type"].value_counts().sort_index().to_dict()),
            }
        )

    @dg.asset(
        group_name=GROUP,
        partitions_def=weekly_partitions,
        pool=WEEKLY_POOL,
        deps=[customers],
        metadata={"partition_expr": PARTITION_EXPR, "table": work_table("eligibility")},
        check_specs=[checks.contract_spec("eligibility", models.EligibilityAsset)],
        kinds={"pandas", "pandera"},
    )
    def eligibility(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        """The products each active customer may be offered this week: the MOD-105 eligibility
        snapshot in force at the evaluation date, reduced to ELIGIBLE pairs of active
        customers and registered products. This is the hard gate of CON-006: nothing outside
        it can ever be recommended."""
        started, week = time.perf_counter(), week_of(context)
        snap = checks.fail_on_violation(
            lambda: src.snapshot(warehouse, "eligibility", week, where="eligibility_status = 'ELIGIBLE'")
        )
        people = read_slice(warehouse, "customers", week)
        products = checks.fail_on_violation(lambda: src.products(warehouse, week))
        context.log.info(f"MOD-105 snapshot {snap.as_of_date.date()}: {len(snap.frame):,} ELIGIBLE rows read and checked")
        pairs = eligible_candidates(snap.frame, people, products["product_id"])
        pairs.insert(0, "snapshot_date", snap.as_of_date)
        df = with_week(pairs, week)
        yield from checks.gate("eligibility", [checks.contract_result(models.EligibilityAsset, df, "eligibility")])
        write_slice(warehouse, "eligibility", df, week)
        yield dg.MaterializeResult(
            metadata={
                **common_metadata(week, df, work_table("eligibility"), started),
                "snapshot_date": snap.as_of_date.date().isoformat(),
                "snapshot_age_days": (pd.Timestamp(week.evaluation_date) - snap.as_of_date).days,
                "snapshot_status_counts": dg.MetadataValue.json(
                    src.eligibility_status_counts(warehouse, snap.as_of_date)
                ),
                "eligible_pairs_dropped_inactive_or_unregistered": len(snap.frame) - len(pairs),
                "parties_with_eligible_products": int(pairs["party_id"].nunique()),
            }
        )

    @dg.asset(
        group_name=GROUP,
        partitions_def=weekly_partitions,
        pool=WEEKLY_POOL,
        deps=[eligibility, customers],
        code_version=MODEL_CODE_VERSION,  # signals do not depend on the weights, only on the code
        metadata={"partition_expr": PARTITION_EXPR, "table": work_table("signals")},
        check_specs=[checks.contract_spec("signals", models.SignalsAsset)],
        kinds={"pandas", "pandera"},
    )
    def signals(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        """The ranking signals of MOD-107 for every eligible (party, product) pair, each in
        [0, 1]: relationship gap against same-segment peers, churn risk (retention
        products), ROTE uplift (MOD-106, optional), idle cash, regular FX, spend affinity,
        and the two penalties: 90-day cooling-off after a rejected offer, and product
        lifecycle (sunset / under capacity)."""
        started, week = time.perf_counter(), week_of(context)
        people = read_slice(warehouse, "customers", week)
        active = active_customers(people)
        churn = checks.fail_on_violation(lambda: src.snapshot(warehouse, "churn_health", week))
        behaviour = checks.fail_on_violation(lambda: src.snapshot(warehouse, "behaviour", week))
        rote = checks.fail_on_violation(lambda: src.snapshot(warehouse, "customer_rote", week))
        inputs = WeekInputs(
            candidates=read_slice(warehouse, "eligibility", week, columns="party_id, product_id"),
            customers=active,
            products=checks.fail_on_violation(lambda: src.products(warehouse, week)),
            holdings=checks.fail_on_violation(lambda: src.holdings(warehouse, week)),
            churn=churn.frame,
            behaviour=behaviour.frame,
            rejections=checks.fail_on_violation(lambda: src.rejections(warehouse, week)),
            evaluation_date=week.evaluation_date,
            rote=None if rote is None else rote.frame,
        )
        context.log.info(f"inputs read and checked; computing signals for {len(inputs.candidates):,} eligible pairs")
        df, report = compute_signals(inputs)
        del inputs
        df = with_week(df, week)
        yield from checks.gate("signals", [checks.contract_result(models.SignalsAsset, df, "signals")])
        write_slice(warehouse, "signals", df, week)
        if report.dropped_signals:
            context.log.warning(f"signals dropped for week {week.key}: {report.dropped_signals} (input absent)")
        yield dg.MaterializeResult(
            metadata={
                **common_metadata(week, df, work_table("signals"), started),
                "dropped_signals": ", ".join(report.dropped_signals) or "none",
                "customer_rote_input": "absent: rote_uplift dropped" if rote is None else rote.as_of_date.date().isoformat(),
                "churn_snapshot": churn.as_of_date.date().isoformat(),
                "behaviour_snapshot": behaviour.as_of_date.date().isoformat(),
                "parties_without_churn": report.parties_without_churn,
                "parties_without_behaviour": report.parties_without_behaviour,
                "pairs_in_cooling_off": report.pairs_in_cooling_off,
                "pairs_dropped_already_held": report.pairs_already_held,
                "parties_without_rote": report.parties_without_rote,
                "signal_means": dg.MetadataValue.json({s: round(float(df[s].mean()), 4) if len(df) else 0.0 for s in ALL_SIGNALS}),
            }
        )

    @dg.asset(
        group_name=GROUP,
        partitions_def=weekly_partitions,
        pool=WEEKLY_POOL,
        deps=[signals],
        code_version=model_version,
        metadata={"partition_expr": PARTITION_EXPR, "table": work_table("scores"), "model_version": model_version},
        check_specs=[checks.contract_spec("scores", models.ScoresAsset)],
        kinds={"pandas", "pandera"},
    )
    def scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        """Each eligible product's 0-1 score for each customer: the weighted sum of its lifting
        signals, with the weights of its product class, scaled down by the cooling-off and
        lifecycle penalties; and primary_signal, the signal that contributed most. The
        weights configuration and the scoring code together make model_version."""
        started, week = time.perf_counter(), week_of(context)
        sig = read_slice(warehouse, "signals", week).drop(columns=["week_start"])
        products = checks.fail_on_violation(lambda: src.products(warehouse, week))
        context.log.info(f"scoring {len(sig):,} candidates with model_version {model_version}")
        df = score_candidates(sig, products, weights)
        del sig
        df["model_version"] = model_version
        df = with_week(df, week)
        yield from checks.gate("scores", [checks.contract_result(models.ScoresAsset, df, "scores")])
        write_slice(warehouse, "scores", df, week)
        yield dg.MaterializeResult(
            metadata={
                **common_metadata(week, df, work_table("scores"), started),
                "model_version": model_version,
                "weights_source": weights.source,
                "score_quantiles": dg.MetadataValue.json(
                    {str(q): round(float(df["score"].quantile(q)), 6) for q in (0.1, 0.5, 0.9)} if len(df) else {}
                ),
            }
        )

    @dg.asset(
        group_name=GROUP,
        partitions_def=weekly_partitions,
        pool=WEEKLY_POOL,
        deps=[scores, customers, eligibility],
        code_version=model_version,
        metadata={"table": HISTORY_TABLE, "partition_expr": "evaluated_at", "model_version": model_version},
        check_specs=[
            checks.contract_spec("nbp_ranked", models.NbpRankedAsset),
            dg.AssetCheckSpec(checks.ELIGIBILITY_GATE, asset="nbp_ranked", blocking=True,
                              description="Every recommended product is ELIGIBLE for that party this week (CON-006)."),
            dg.AssetCheckSpec(checks.RANKS, asset="nbp_ranked", blocking=True,
                              description="Ranks are 1..n per customer, n <= 3, no product twice."),
            dg.AssetCheckSpec(checks.SCORES, asset="nbp_ranked", blocking=True,
                              description="Scores in [0, 1] at 6 decimals, never rising with rank."),
            dg.AssetCheckSpec(checks.MODEL_VERSION, asset="nbp_ranked", blocking=True,
                              description="model_version of this code and weights on every row."),
        ],
        kinds={"pandas", "pandera"},
    )
    def nbp_ranked(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        """The top 3 next best products of every active customer for the week, rank 1 highest,
        with score, primary_signal and model_version on every row. Written to the warehouse
        history table product_intelligence.next_best_product (the seed's columns and key);
        a re-run of a week replaces that week's rows."""
        started, week = time.perf_counter(), week_of(context)
        scored = read_slice(warehouse, "scores", week, columns="party_id, product_id, score, primary_signal")
        people = read_slice(warehouse, "customers", week)
        context.log.info(f"ranking {len(scored):,} scored candidates")
        df = top_products(scored, active_customers(people), model_version, week.evaluated_at)
        del scored
        eligible = read_slice(warehouse, "eligibility", week, columns="party_id, product_id")
        results = [
            checks.contract_result(models.NbpRankedAsset, df, HISTORY_TABLE),
            checks.rows_result(checks.ELIGIBILITY_GATE, invariants.outside_eligibility(df, eligible),
                               "every product recommended is ELIGIBLE for the party"),
            checks.rows_result(checks.RANKS, invariants.bad_ranks(df), "ranks 1..n, at most 3 per customer"),
            checks.rows_result(checks.SCORES, invariants.bad_scores(df), "scores in [0, 1], 6 dp, not rising with rank"),
            checks.rows_result(checks.MODEL_VERSION, invariants.wrong_model_version(df, model_version),
                               f"model_version {model_version} on every row"),
        ]
        del eligible
        yield from checks.gate("nbp_ranked", results)
        warehouse.replace_slice(
            HISTORY_TABLE, df, where=f"evaluated_at = {sql_date(week.evaluated_at)}", ddl=HISTORY_DDL, key=HISTORY_KEY
        )
        active = int((people["status"] == "ACTIVE").sum())
        yield dg.MaterializeResult(
            metadata={
                **common_metadata(week, df, HISTORY_TABLE, started),
                "model_version": model_version,
                "evaluated_at": week.evaluated_at.isoformat(sep=" "),
                "customers_ranked": int(df["party_id"].nunique()),
                "active_customers_without_eligible_product": active - int(df["party_id"].nunique()),
                "rank1_primary_signal": dg.MetadataValue.json(
                    df.loc[df["rank"] == 1, "primary_signal"].value_counts().sort_index().to_dict()
                ),
                "preview": preview(df),
            }
        )

    @dg.asset(
        group_name=GROUP,
        partitions_def=weekly_partitions,
        pool=WEEKLY_POOL,
        # NBP_FAIRNESS_BLOCKS_PUBLISH=true: publish only after this week's fairness check (docs/fairness.md).
        deps=[nbp_ranked, *(["fairness_report"] if fairness_blocks_publish else [])],
        code_version=model_version,
        metadata={"table": "postgres: product_intelligence.nbp_current", "model_version": model_version},
        check_specs=[checks.contract_spec("nbp_current", models.NbpCurrentAsset)],
        kinds={"postgres"},
    )
    def nbp_current(context: dg.AssetExecutionContext, warehouse: WarehouseResource, postgres: PostgresResource):
        """The current week's top 3 per customer in PostgreSQL (product_intelligence.nbp_current),
        read by the offer engine (MOD-108), agent assist (MOD-083) and app insight cards
        (MOD-077). Replaced atomically: readers see the previous week or this one, never a
        mix or an empty table. A backfill of an older week never replaces a newer one."""
        from nbp_assets.storage import postgres as pg

        started, week = time.perf_counter(), week_of(context)
        if fairness_blocks_publish and (blocked := publish_blocked_reason(warehouse, week, model_version)):
            raise dg.Failure(description=blocked, metadata={"published": False})
        df = read_history(warehouse, week, order_by="party_id, rank")
        df["rank"] = df["rank"].astype("int32")
        df["score"] = df["score"].astype("float64")
        yield from checks.gate("nbp_current", [checks.contract_result(models.NbpCurrentAsset, df, "nbp_current")])
        context.log.info(f"publishing {len(df):,} rows to {postgres.describe()}")
        result = pg.publish_current(postgres.conninfo(), df, week.evaluated_at)
        context.log.info(f"nbp_current: {result.reason}")
        yield dg.MaterializeResult(
            metadata={
                **common_metadata(week, df, "product_intelligence.nbp_current", started),
                "published": result.published,
                "outcome": result.reason,
                "current_week_before": str(result.previous_evaluated_at) if result.previous_evaluated_at else "none",
                "publish_seconds": round(result.seconds, 2),
                "model_version": model_version,
                "postgres": postgres.describe(),
            }
        )

    return [customers, activity, eligibility, signals, scores, nbp_ranked, nbp_current]
