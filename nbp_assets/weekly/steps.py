"""The statements each weekly step runs for a week, built in one place: the assets
(weekly/assets.py) execute them and record their digest, `compile` (weekly/compile.py)
writes them. No query text is built here: every piece is a rendered SQL file
(weekly/sql/, core/sql/); this module only chooses the parameters.

A step's `sql_digest` is the sha256 of its statements joined as `compile` writes them
(core.sql.script): the model's writes (the DELETE and INSERT ... SELECT per shard, and the
peers' temporary table), not the contract checks around them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date

from nbp_assets.contract.tables import (
    CUSTOMERS,
    ELIGIBILITY,
    HISTORY,
    PRODUCTS,
    SCORES,
    SIGNALS,
    WITHHELD,
    Table,
)
from nbp_assets.core.partitions import Week
from nbp_assets.core.sql import digest, render, script
from nbp_assets.weekly import checks, invariants
from nbp_assets.weekly.eligibility import ACTIVE, ELIGIBLE, eligible_pairs_sql
from nbp_assets.weekly.io import replace_week, replace_week_sql, week_filter, week_slice
from nbp_assets.weekly.ranking import scores_sql, top_n_sql
from nbp_assets.weekly.signals import (
    SignalRelations,
    peers_sql,
    report_sql,
    signals_sql,
    suppressed_sql,
    withheld_sql,
)
from nbp_assets.weekly.suitability import suppressed_published
from nbp_assets.weekly.weights import Weights

PEERS_TABLE = "nbp_peers"  # the week's peer shares, when the signals run in party shards


@dataclass(frozen=True)
class Write:
    """Replace the week's slice of `table` by the rows of `selects` (one per party shard),
    after the statements of `before`."""

    table: Table
    selects: tuple[str, ...]
    before: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepSql:
    """Everything a weekly step writes, as statements in run order."""

    step: str
    week: Week
    writes: tuple[Write, ...]

    def statements(self) -> list[str]:
        return [s for w in self.writes for s in (*w.before, *replace_week_sql(w.table, self.week, list(w.selects)))]

    @property
    def script(self) -> str:
        return script(self.statements())

    @property
    def digest(self) -> str:
        return digest(self.statements())

    def run(self, tx, log=None) -> dict[str, int]:
        """Execute the step's writes in `tx`; the rows of each table's week slice."""
        rows = {}
        for w in self.writes:
            for statement in w.before:
                tx.execute(statement)
            rows[w.table.name] = replace_week(tx, w.table, self.week, list(w.selects), log)
        return rows


def within(relation: str, predicate: str | None) -> str:
    """`relation` restricted to the rows matching `predicate` (all of it when None)."""
    return render("core", "within", relation=relation, predicate=predicate).text


def active(week: Week, columns: str = "*") -> str:
    """The week's active customers as a relation."""
    return render(
        "weekly",
        "active_customers",
        table=CUSTOMERS.name,
        week=week_filter(CUSTOMERS, week),
        active=ACTIVE,
        columns=columns,
    ).text


def eligibility(week: Week, snapshot: str, snapshot_date: date, products: str) -> StepSql:
    """The week's product register (from the checked source) and the CON-006 gate."""
    pairs = eligible_pairs_sql(
        snapshot, week_slice(CUSTOMERS, week), week_slice(PRODUCTS, week), snapshot_date=snapshot_date
    )
    register = render("core", "select", columns="*", relation=products).text
    return StepSql("eligibility", week, (Write(PRODUCTS, (register,)), Write(ELIGIBILITY, (pairs,))))


def signal_relations(week: Week, **inputs) -> SignalRelations:
    """The signals' relations of a week: the stored gate, register and active customers, and
    the point-in-time `inputs` (holdings, churn, behaviour, rejections, rote, suitability)."""
    return SignalRelations(
        candidates=week_slice(ELIGIBILITY, week, "party_id, product_id"),
        customers=active(week, "party_id, segment"),
        products=week_slice(PRODUCTS, week),
        evaluation_date=week.evaluation_date,
        **inputs,
    )


def per_shard(relations: SignalRelations, shards: list[str | None]) -> list[SignalRelations]:
    """The relations of each party shard; several shards read the peers' table."""
    if len(shards) > 1:
        relations = dataclasses.replace(relations, peers=PEERS_TABLE)
    return [dataclasses.replace(relations, parties=p) for p in shards]


def signals(
    week: Week,
    relations: SignalRelations,
    shards: list[str | None],
    table: Table = SIGNALS,
    withheld: Table | None = WITHHELD,
) -> StepSql:
    """The signals of every candidate pair, one query per party shard; with several shards
    the peers' share (bank-wide) is computed once first, into a temporary table. With
    `withheld` (the live week's, not a sandbox's), the why-not record of the pairs the
    suitability rule suppressed, in the same shards and the same transaction."""
    before = (peers_sql(relations, into=PEERS_TABLE),) if len(shards) > 1 else ()
    shard_relations = per_shard(relations, shards)
    writes = [Write(table, tuple(signals_sql(r) for r in shard_relations), before)]
    if withheld is not None:
        writes.append(Write(withheld, tuple(withheld_sql(r) for r in shard_relations)))
    return StepSql("signals", week, tuple(writes))


def signal_report(relations: SignalRelations, shards: list[str | None]) -> tuple[list[str], list[str]]:
    """The signals' report queries per shard: parties without an input; suppressed pairs."""
    shard_relations = per_shard(relations, shards)
    return [report_sql(r) for r in shard_relations], [suppressed_sql(r) for r in shard_relations]


def exclusions_by_product(week: Week, relations: SignalRelations) -> str:
    """Per product of the week's register: the gate's candidates the customer already holds
    (excluded_as_held) and the pairs the suitability rule withheld (withheld, by rule), from
    the stored week; set-based, one row per product (weekly/sql/exclusions_by_product.sql)."""
    return render(
        "weekly",
        "exclusions_by_product",
        products=week_slice(PRODUCTS, week, "product_id"),
        candidates=week_slice(ELIGIBILITY, week, "party_id, product_id"),
        holdings=relations.holdings,
        withheld=week_slice(WITHHELD, week, "product_id, rule"),
    ).text


def gate_exclusions_by_product(week: Week, snapshot: str) -> str:
    """Per product in the MOD-105 snapshot: the snapshot's pairs of the week's active
    customers that the gate dropped (not ELIGIBLE, or the product not registered)."""
    return render(
        "weekly",
        "gate_exclusions_by_product",
        snapshot=snapshot,
        customers=week_slice(CUSTOMERS, week),
        products=week_slice(PRODUCTS, week, "product_id"),
        active=ACTIVE,
        eligible=ELIGIBLE,
    ).text


def scores(week: Week, weights: Weights, shards: list[str | None]) -> StepSql:
    signals_ = week_slice(SIGNALS, week)
    products = week_slice(PRODUCTS, week)
    selects = tuple(scores_sql(within(signals_, p), products, weights, weights.model_version) for p in shards)
    return StepSql("scores", week, (Write(SCORES, selects),))


def nbp_ranked(week: Week, model_version: str, shards: list[str | None], dialect: str) -> StepSql:
    """The week's top 3 of the stored scores."""
    scores_ = week_slice(SCORES, week, "party_id, product_id, score, primary_signal")
    selects = top_n_selects(week, scores_, model_version, shards, dialect)
    return StepSql("nbp_ranked", week, (Write(HISTORY, selects),))


def top_n_selects(
    week: Week, scores_: str, model_version: str, shards: list[str | None], dialect: str
) -> tuple[str, ...]:
    """The week's top 3 of `scores_` (party_id, product_id, score, primary_signal), one query
    per party shard, each in key order (party_id, rank). The shards ascend by party, so the
    week is stored in key order: a customer's rows sit together for readers, and the publish
    streams the week presorted."""
    customers = active(week, "party_id, jurisdiction")
    products = week_slice(PRODUCTS, week, "product_id")
    return tuple(
        top_n_sql(
            within(scores_, p),
            within(customers, p),
            model_version,
            week.evaluated_at,
            products=products,
            dialect=dialect,
            ordered=True,
        )
        for p in shards
    )


def ranked_checks(
    week: Week, weights: Weights, health: str, shards: list[str | None]
) -> dict[str, tuple[str, list[str] | None]]:
    """nbp_ranked's business invariants: check name -> (the offending rows' query, the
    per-shard count queries or None)."""
    ranked = week_slice(HISTORY, week)
    eligible = week_slice(ELIGIBILITY, week, "party_id, product_id")
    return {
        # per party shard: at 10M customers one join of the week's 28M recommendations
        # with its 119M eligible pairs spilled and took 30 s on one thread
        checks.ELIGIBILITY_GATE: (
            invariants.outside_eligibility(ranked, eligible),
            [invariants.outside_eligibility_count(within(ranked, p), within(eligible, p)) for p in shards],
        ),
        checks.RANKS: (invariants.bad_ranks(ranked), None),
        checks.SCORES: (invariants.bad_scores(ranked), None),
        checks.MODEL_VERSION: (invariants.wrong_model_version(ranked, weights.model_version), None),
        checks.SUITABILITY: (suppressed_published(ranked, health, week_slice(PRODUCTS, week), weights), None),
    }
