"""MOD-107 weekly next-best-product engine as software-defined assets.

customers -> eligibility -> signals -> scores -> nbp_ranked -> nbp_current
activity (the week's events, checked and kept per week; the next-best-offer assets read the same landing table in micro-batches)
fairness_report lives in fairness/asset.py.

Every asset is partitioned by bank week (see partitions.py). Each step is one module-level
function: it renders the model's SQL files (nbp_assets/weekly/sql, through weekly/steps.py)
over the week's inputs, replaces the week's slice inside the warehouse, checks it there and
commits only if every blocking check passed; its metadata records `sql_digest`, the sha256
of the statements it wrote with (the same text `python -m nbp_assets compile` writes). Only
counts, examples and metadata come back to Python. No query text is written here.
"""

import functools
import time
from typing import Iterator

import dagster as dg

from nbp_assets.contract import assets as models
from nbp_assets.contract.tables import ACTIVITY, CUSTOMERS, ELIGIBILITY, HISTORY, PRODUCTS, SCORES, SIGNALS, WITHHELD
from nbp_assets.core.partitions import Week
from nbp_assets.core.sql import render
from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.sources import week_inputs as src
from nbp_assets.weekly import checks, registry, steps
from nbp_assets.weekly.eligibility import ACTIVE
from nbp_assets.weekly.io import (
    common_metadata,
    count_rows,
    party_shards,
    replace_week,
    week_filter,
    week_of,
    week_slice,
)
from nbp_assets.weekly.signals import SignalRelations
from nbp_assets.weekly.suitability import rules_relation
from nbp_assets.weekly.vocabulary import ALL_SIGNALS
from nbp_assets.weekly.weights import Weights

Step = Iterator[dg.AssetCheckResult | dg.MaterializeResult]


def in_session(step):
    """Run a step's warehouse calls over one connection (DuckDB) or login (Snowflake)."""

    @functools.wraps(step)
    def run(context, warehouse: WarehouseResource, *args, **kwargs) -> Step:
        with warehouse.session():
            yield from step(context, warehouse, *args, **kwargs)

    return run


def _active(week: Week, columns: str = "*") -> str:
    return steps.active(week, columns)


def _select(relation: str, columns: str = "*", **clauses) -> str:
    """A small read around the model (metadata, previews): core/sql/select.sql."""
    return render("core", "select", columns=columns, relation=relation, **clauses).text


def _counts(warehouse, relation: str, by: str, where: str | None = None) -> dict:
    return warehouse.counts(render("core", "counts_by", relation=relation, by=by, where=where).text)


def week_shards(reader, warehouse: WarehouseResource, week: Week) -> list[str | None]:
    """The week's party shards, read by `reader` (a transaction or the warehouse itself)."""
    return party_shards(reader, _active(week, "party_id"), warehouse.shard_size())


@in_session
def customers_step(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Step:
    """Every customer as the bank knew them at the close of the week (customer master,
    versioned): party, jurisdiction, segment, age band, gender, status, income and FICO.
    Only ACTIVE customers receive next-best-product recommendations."""
    started, week = time.perf_counter(), week_of(context)
    relation = checks.fail_on_violation(lambda: src.customers(warehouse, week))
    warehouse.ensure_table(CUSTOMERS)
    with warehouse.transaction() as tx:
        rows = replace_week(tx, CUSTOMERS, week, _select(relation))
        memory = tx.memory_metadata()
        yield from checks.gate(
            "customers", [checks.contract_in_warehouse(tx, CUSTOMERS, week_filter(CUSTOMERS, week), rows)]
        )
    by_status = _counts(warehouse, week_slice(CUSTOMERS, week), "status")
    yield dg.MaterializeResult(
        metadata={
            **common_metadata(week, rows, CUSTOMERS.name, started),
            "by_status": dg.MetadataValue.json(by_status),
            "active_customers": by_status.get(ACTIVE, 0),
            **memory,
        }
    )


@in_session
def activity_step(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Step:
    """Customer activity events of the week (branch visits, deposits, app and web opens,
    new accounts, FX and card payments) with their propensity to buy: the stream the
    next-best-offer recipe reacts to."""
    started, week = time.perf_counter(), week_of(context)
    relation = checks.fail_on_violation(lambda: src.activity(warehouse, week))
    warehouse.ensure_table(ACTIVITY)
    with warehouse.transaction() as tx:
        rows = replace_week(tx, ACTIVITY, week, _select(relation))
        yield from checks.gate(
            "activity", [checks.contract_in_warehouse(tx, ACTIVITY, week_filter(ACTIVITY, week), rows)]
        )
    by_type = _counts(warehouse, week_slice(ACTIVITY, week), "activity_type")
    yield dg.MaterializeResult(
        metadata={
            **common_metadata(week, rows, ACTIVITY.name, started),
            "by_activity_type": dg.MetadataValue.json(by_type),
        }
    )


def eligibility_sql(warehouse: WarehouseResource, week: Week):
    """The eligibility step's statements for the week, from its checked point-in-time inputs
    (the MOD-105 snapshot in force, the product register); and the snapshot read."""
    # the snapshot (~19 rows per customer) is checked for duplicate pairs one party range at a time
    shards = week_shards(warehouse, warehouse, week)
    snap = checks.fail_on_violation(lambda: src.snapshot(warehouse, "eligibility", week, shards))
    products = checks.fail_on_violation(lambda: src.products(warehouse, week))
    return steps.eligibility(week, snap.relation, snap.as_of_date.date(), products), snap


@in_session
def eligibility_step(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Step:
    """The products each active customer may be offered this week: the MOD-105 eligibility
    snapshot in force at the evaluation date, reduced to ELIGIBLE pairs of active
    customers and registered products. This is the hard gate of CON-006: nothing outside
    it can ever be recommended. The week's product register (nbp_work.products) is kept
    beside it."""
    started, week = time.perf_counter(), week_of(context)
    step, snap = eligibility_sql(warehouse, week)
    context.log.info(f"MOD-105 snapshot {snap.as_of_date.date()} checked in the warehouse")
    warehouse.ensure_table(PRODUCTS)
    warehouse.ensure_table(ELIGIBILITY)
    with warehouse.transaction() as tx:
        # The week's product register is kept beside the gate: every later step reads it from here.
        written = step.run(tx)
        n_products, rows = written[PRODUCTS.name], written[ELIGIBILITY.name]
        memory = tx.memory_metadata()
        # One contract check for the step: the product register's if it fails, else the gate's.
        contract = checks.contract_in_warehouse(tx, PRODUCTS, week_filter(PRODUCTS, week), n_products)
        if contract.passed:
            contract = checks.contract_in_warehouse(tx, ELIGIBILITY, week_filter(ELIGIBILITY, week), rows)
        yield from checks.gate("eligibility", [contract])
    status_counts = src.eligibility_status_counts(warehouse, snap.as_of_date)
    gate = warehouse.query(steps.gate_exclusions_by_product(week, snap.relation))
    yield dg.MaterializeResult(
        metadata={
            **common_metadata(week, rows, ELIGIBILITY.name, started),
            "snapshot_date": snap.as_of_date.date().isoformat(),
            "snapshot_age_days": (week.evaluation_date - snap.as_of_date.date()).days,
            "snapshot_status_counts": dg.MetadataValue.json(status_counts),
            "eligible_pairs_dropped_inactive_or_unregistered": status_counts.get("ELIGIBLE", 0) - rows,
            # per product: the snapshot's pairs of active customers the gate dropped
            "excluded_by_gate": dg.MetadataValue.json(
                {str(p): int(n) for p, n in zip(gate["product_id"], gate["excluded_by_gate"])}
            ),
            "registered_products": n_products,
            "sql_digest": step.digest,
            **memory,
        }
    )


def week_signal_relations(warehouse: WarehouseResource, week: Week, weights: Weights):
    """The week's signal inputs as relations (point-in-time, contract-checked in place), with
    the suitability rule of `weights`; and the snapshots read (churn, behaviour, ROTE or None)."""
    churn = checks.fail_on_violation(lambda: src.snapshot(warehouse, "churn_health", week))
    behaviour = checks.fail_on_violation(lambda: src.snapshot(warehouse, "behaviour", week))
    rote = checks.fail_on_violation(lambda: src.snapshot(warehouse, "customer_rote", week))
    relations = steps.signal_relations(
        week,
        holdings=checks.fail_on_violation(lambda: src.holdings(warehouse, week)),
        churn=churn.relation,
        behaviour=behaviour.relation,
        rejections=checks.fail_on_violation(lambda: src.rejections(warehouse, week)),
        rote=None if rote is None else rote.relation,
        suitability=rules_relation(weights),
    )
    return relations, churn, behaviour, rote


def write_signals(tx, warehouse: WarehouseResource, table, week: Week, relations: SignalRelations, log):
    """Replace the week's slice of `table` by the signals, in party shards, and for the live
    signals (`table` is SIGNALS, not a sandbox's) the week's why-not record
    (nbp_work.withheld); returns the rows, the shards and the step's statements."""
    shards = party_shards(tx, _active(week, "party_id"), warehouse.shard_size())
    log.info(f"inputs checked in the warehouse; computing the signals there in {len(shards)} shard(s)")
    step = steps.signals(week, relations, shards, table, withheld=WITHHELD if table is SIGNALS else None)
    rows = step.run(tx, log)[table.name]
    return rows, shards, step


@in_session
def signals_step(context: dg.AssetExecutionContext, warehouse: WarehouseResource, weights: Weights) -> Step:
    """The ranking signals of MOD-107 for every eligible (party, product) pair, each in
    [0, 1]: relationship gap against same-segment peers, churn risk (retention
    products), ROTE uplift (MOD-106, optional), idle cash, regular FX, spend affinity,
    and the three penalties: 90-day cooling-off after a rejected offer, product
    lifecycle (sunset / under capacity) and suitability (the customer's MOD-040 financial
    health below the product class's threshold), with the financial health itself.
    Products the customer already holds are dropped, and so are the products the
    suitability rule suppresses for a customer in financial difficulty or whose financial
    health is unknown (fails closed): each of those is recorded with its reason in
    nbp_work.withheld, written in the same transaction."""
    started, week = time.perf_counter(), week_of(context)
    relations, churn, behaviour, rote = week_signal_relations(warehouse, week, weights)
    warehouse.ensure_table(SIGNALS)
    warehouse.ensure_table(WITHHELD)
    with warehouse.transaction() as tx:
        rows, shards, step = write_signals(tx, warehouse, SIGNALS, week, relations, context.log)
        withheld_rows = count_rows(tx, week_slice(WITHHELD, week))
        memory = tx.memory_metadata()
        # One contract check for the step: the signals' if it fails, else the why-not record's.
        contract = checks.contract_in_warehouse(tx, SIGNALS, week_filter(SIGNALS, week), rows)
        if contract.passed:
            contract = checks.contract_in_warehouse(tx, WITHHELD, week_filter(WITHHELD, week), withheld_rows)
        yield from checks.gate("signals", [contract])
    # per shard too: one pass would join every input on every party at once
    reports, _ = steps.signal_report(relations, shards)
    report = sum(warehouse.query(q).iloc[0] for q in reports)
    withheld = warehouse.query(render("weekly", "withheld_counts", withheld=week_slice(WITHHELD, week)).text).iloc[0]
    suppressed = int(withheld["pairs"])
    by_product = warehouse.query(steps.exclusions_by_product(week, relations))
    stats = warehouse.query(
        render("weekly", "signal_stats", signals=week_slice(SIGNALS, week), names=ALL_SIGNALS).text
    ).iloc[0]
    candidates = count_rows(warehouse, week_slice(ELIGIBILITY, week))
    if relations.dropped_signals:
        context.log.warning(f"signals dropped for week {week.key}: {relations.dropped_signals} (input absent)")
    yield dg.MaterializeResult(
        metadata={
            **common_metadata(week, rows, SIGNALS.name, started),
            "shards": len(shards),
            "dropped_signals": ", ".join(relations.dropped_signals) or "none",
            "customer_rote_input": "absent: rote_uplift dropped"
            if rote is None
            else rote.as_of_date.date().isoformat(),
            "churn_snapshot": churn.as_of_date.date().isoformat(),
            "behaviour_snapshot": behaviour.as_of_date.date().isoformat(),
            "parties_without_churn": int(report["parties_without_churn"]),
            "parties_without_behaviour": int(report["parties_without_behaviour"]),
            "parties_without_rote": 0 if rote is None else int(report["parties_without_rote"]),
            "pairs_in_cooling_off": int(stats["cooling"] or 0),
            "pairs_dropped_already_held": candidates - rows - suppressed,
            "pairs_suppressed_unsuitable": suppressed,
            **_why_not_metadata(withheld, by_product),
            "pairs_down_weighted_unsuitable": int(stats["down_weighted"] or 0),
            "suitability_rule": weights.signals_version,
            "signal_means": dg.MetadataValue.json({s: round(float(stats[s] or 0.0), 4) for s in ALL_SIGNALS}),
            "sql_digest": step.digest,
            **memory,
        }
    )


def _why_not_metadata(withheld, by_product) -> dict:
    """What the suitability rule withheld this week, by rule and by product, and the pairs
    dropped as already held per product (the counts of nbp_work.withheld and the candidates)."""
    return {
        "pairs_withheld_by_rule": dg.MetadataValue.json(
            {
                "suitability_health_below": int(withheld["health_below"]),
                "suitability_when_unknown": int(withheld["when_unknown"]),
            }
        ),
        # customers whose MOD-040 health is unknown this week and who lost a product to it
        "parties_unknown_health_withheld": int(withheld["parties_unknown"]),
        "withheld_table": WITHHELD.name,
        "excluded_as_held": dg.MetadataValue.json(
            {str(p): int(n) for p, n in zip(by_product["product_id"], by_product["excluded_as_held"])}
        ),
        "withheld_by_product": dg.MetadataValue.json(
            {
                str(p): {"suitability_health_below": int(b), "suitability_when_unknown": int(u)}
                for p, b, u in zip(
                    by_product["product_id"], by_product["withheld_health_below"], by_product["withheld_when_unknown"]
                )
                if b or u
            }
        ),
    }


@in_session
def scores_step(context: dg.AssetExecutionContext, warehouse: WarehouseResource, weights: Weights) -> Step:
    """Each eligible product's 0-1 score for each customer: the weighted sum of its lifting
    signals, with the weights of its product class, scaled down by the cooling-off and
    lifecycle penalties; and primary_signal, the signal that contributed most. The
    weights configuration and the scoring code together make model_version."""
    started, week = time.perf_counter(), week_of(context)
    model_version = weights.model_version
    context.log.info(f"scoring in the warehouse with model_version {model_version}")
    warehouse.ensure_table(SCORES)
    with warehouse.transaction() as tx:
        # in party shards like the signals: one 95M-row insert at 10M customers took 39.5 s, ten 34.4 s
        shards = week_shards(tx, warehouse, week)
        step = steps.scores(week, weights, shards)
        rows = step.run(tx, context.log)[SCORES.name]
        memory = tx.memory_metadata()
        yield from checks.gate("scores", [checks.contract_in_warehouse(tx, SCORES, week_filter(SCORES, week), rows)])
    stats = warehouse.query(render("weekly", "score_stats", scores=week_slice(SCORES, week)).text)
    yield dg.MaterializeResult(
        metadata={
            **common_metadata(week, rows, SCORES.name, started),
            "model_version": model_version,
            "shards": len(shards),
            "weights_source": weights.source,
            "score_range": dg.MetadataValue.json({k: round(float(v or 0.0), 6) for k, v in stats.iloc[0].items()}),
            "sql_digest": step.digest,
            **memory,
        }
    )


def top_n_by_shard(
    warehouse: WarehouseResource, week: Week, scores: str, model_version: str, shards: list[str | None]
) -> list[str]:
    """The week's top 3 of `scores` (party_id, product_id, score, primary_signal), one query per
    party shard (see replace_week), each in key order (party_id, rank)."""
    return list(steps.top_n_selects(week, scores, model_version, shards, warehouse.dialect))


def _ranked_checks(
    tx, week: Week, rows: int, active: int, weights: Weights, health: str, shards: list[str | None]
) -> list[dg.AssetCheckResult]:
    model_version = weights.model_version
    pairs = count_rows(tx, week_slice(ELIGIBILITY, week, "party_id, product_id"))
    empty = checks.query_result(
        tx,
        checks.NOT_EMPTY,
        render("weekly", "checks/not_empty", active=active, pairs=pairs, rows=rows).text,
        f"the week has recommendations (an empty week never replaces history): {active} active customers, "
        f"{pairs} eligible pairs",
    )
    invariants = steps.ranked_checks(week, weights, health, shards)
    what = {
        checks.ELIGIBILITY_GATE: "every product recommended is ELIGIBLE for the party",
        checks.RANKS: "ranks 1..n, at most 3 per customer",
        checks.SCORES: "scores in [0, 1], 6 dp, not rising with rank",
        checks.MODEL_VERSION: f"model_version {model_version} on every row",
        checks.SUITABILITY: "no product the suitability rule suppresses is recommended to a customer whose "
        "MOD-040 financial health is below its class's threshold",
    }
    return [
        checks.contract_in_warehouse(tx, HISTORY, week_filter(HISTORY, week), rows),
        *(checks.query_result(tx, name, sql, what[name], counts) for name, (sql, counts) in invariants.items()),
        empty,
    ]


def ranked_health(warehouse: WarehouseResource, week: Week) -> str:
    """The MOD-040 snapshot the suitability check reads (itself, not the signals the rule produced)."""
    return checks.fail_on_violation(lambda: src.snapshot(warehouse, "churn_health", week)).relation


@in_session
def nbp_ranked_step(context: dg.AssetExecutionContext, warehouse: WarehouseResource, weights: Weights) -> Step:
    """The top 3 next best products of every active customer for the week, rank 1 highest,
    with score, primary_signal and model_version on every row. Written to the warehouse
    history table product_intelligence.next_best_product (the seed's columns and key)
    only after every blocking check passed; a re-run of a week replaces that week's rows."""
    started, week = time.perf_counter(), week_of(context)
    model_version = weights.model_version
    context.log.info("ranking the top 3 per customer in the warehouse")
    health = ranked_health(warehouse, week)
    warehouse.ensure_table(HISTORY)
    registry.ensure_tables(warehouse)
    with warehouse.transaction() as tx:
        # Nothing of the week reaches the history unless every check below passes: they run on
        # the uncommitted rows, and a failure rolls the replace back.
        shards = week_shards(tx, warehouse, week)
        step = steps.nbp_ranked(week, model_version, shards, warehouse.dialect)
        rows = step.run(tx, context.log)[HISTORY.name]
        memory = tx.memory_metadata()
        active = count_rows(tx, _active(week))
        yield from checks.gate("nbp_ranked", _ranked_checks(tx, week, rows, active, weights, health, shards))
        # the model registry: the week is tied to its configuration in the same commit (docs/governance.md)
        registry_digest = registry.record_week(tx, weights, week, warehouse.dialect)
    ranked = week_slice(HISTORY, week)
    rank1 = _counts(warehouse, ranked, "primary_signal", where="rank = 1")
    parties = sum(rank1.values())  # every customer ranked has one rank 1 (the ranks check passed)
    sample = warehouse.query(_select(ranked, order_by="party_id, rank", limit=10))
    yield dg.MaterializeResult(
        metadata={
            **common_metadata(week, rows, HISTORY.name, started),
            "model_version": model_version,
            "evaluated_at": week.evaluated_at.isoformat(sep=" "),
            "customers_ranked": parties,
            "shards": len(shards),
            "active_customers_without_eligible_product": active - parties,
            "rank1_primary_signal": dg.MetadataValue.json(rank1),
            "preview": dg.MetadataValue.md(sample.to_markdown(index=False)),
            "sql_digest": step.digest,
            "registry": f"{registry.MODEL_VERSIONS.name} (model SQL digest {registry_digest[:12]})",
            **memory,
        }
    )


# ----------------------------------------------------------------------------- declarations

from nbp_assets.core.partitions import weekly_partitions  # noqa: E402
from nbp_assets.weekly.io import GROUP, WEEKLY_POOL, table_metadata  # noqa: E402
from nbp_assets.weekly.weights_asset import RANKING_WEIGHTS  # noqa: E402

_RANKED_CHECKS = [
    (checks.ELIGIBILITY_GATE, "Every recommended product is ELIGIBLE for that party this week (CON-006)."),
    (checks.RANKS, "Ranks are 1..n per customer, n <= 3, no product twice."),
    (checks.SCORES, "Scores in [0, 1] at 6 decimals, never rising with rank."),
    (checks.MODEL_VERSION, "model_version of this code and weights on every row."),
    (
        checks.SUITABILITY,
        "No pair the suitability rule suppresses is recommended: a product class with a "
        "suppressing rule never reaches a customer whose MOD-040 financial health is below "
        "the class's threshold (CON-006, Consumer Duty).",
    ),
    (
        checks.NOT_EMPTY,
        "The week has recommendations: an empty week (no active customer or no eligible pair) "
        "fails instead of erasing the week's history.",
    ),
]


def weekly_spec(name: str, table, model, docstring_of, deps=(), code_version=None, extra_checks=(), **metadata):
    """The keyword arguments of a weekly asset: its partitions, pool, table metadata and checks."""
    spec = dict(
        name=name,
        group_name=GROUP,
        partitions_def=weekly_partitions,
        pool=WEEKLY_POOL,
        deps=list(deps),
        code_version=code_version,
        description=docstring_of.__doc__,
        metadata={**table_metadata(table), **metadata},
        check_specs=[
            checks.contract_spec(name, model, weekly_partitions),
            *(checks.check_spec(check, name, text, partitions_def=weekly_partitions) for check, text in extra_checks),
        ],
        kinds={"sql", "pandera"},
    )
    return spec


def build_engine_assets(weights: Weights) -> list[dg.AssetsDefinition]:
    """The weekly ranking's assets, customers to nbp_ranked, governed by one weights
    configuration and its model_version (the publish, fairness and monitoring assets are
    their own domains')."""
    model_version = weights.model_version

    @dg.asset(**weekly_spec("customers", CUSTOMERS, models.CustomersAsset, customers_step))
    def customers(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        yield from customers_step(context, warehouse)

    @dg.asset(**weekly_spec("activity", ACTIVITY, models.ActivityAsset, activity_step))
    def activity(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        yield from activity_step(context, warehouse)

    @dg.asset(**weekly_spec("eligibility", ELIGIBILITY, models.EligibilityAsset, eligibility_step, deps=[customers]))
    def eligibility(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        yield from eligibility_step(context, warehouse)

    # signals depend on the code and on the suitability rule only, not on the other weights.
    # Every asset whose rows carry model_version depends on ranking_weights: a new weights
    # digest shows each one stale.
    @dg.asset(
        **weekly_spec(
            "signals",
            SIGNALS,
            models.SignalsAsset,
            signals_step,
            deps=[eligibility, customers],
            code_version=weights.signals_version,
        )
    )
    def signals(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        yield from signals_step(context, warehouse, weights)

    @dg.asset(
        **weekly_spec(
            "scores",
            SCORES,
            models.ScoresAsset,
            scores_step,
            deps=[signals, RANKING_WEIGHTS],
            code_version=model_version,
            model_version=model_version,
        )
    )
    def scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        yield from scores_step(context, warehouse, weights)

    @dg.asset(
        **weekly_spec(
            "nbp_ranked",
            HISTORY,
            models.NbpRankedAsset,
            nbp_ranked_step,
            deps=[scores, customers, eligibility, RANKING_WEIGHTS],
            code_version=model_version,
            extra_checks=_RANKED_CHECKS,
            model_version=model_version,
        )
    )
    def nbp_ranked(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        yield from nbp_ranked_step(context, warehouse, weights)

    return [customers, activity, eligibility, signals, scores, nbp_ranked]
