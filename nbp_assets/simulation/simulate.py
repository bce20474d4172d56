"""Challenger simulation: rank a week with a candidate weights configuration (or the code as
it is now) into a sandbox schema and compare it with the live model's published week, before
the change ships.

The challenger's signals, scores and top 3 go to `nbp_sandbox` only; the history
(product_intelligence.next_best_product), nbp_work and PostgreSQL's nbp_current are only
read. The report: share of customers whose top 1 / top 3 changed, movement per product, and
each product's fairness gaps before and after with the breaches the change would add or
remove (eligibility / ranking split and 95% intervals, fairness/maths.py's statistics).

CLI: `python -m nbp_assets simulate --weights new.csv --week W`; UI: the `nbp_simulate_job`
job (config: weights_file, week).
"""

import argparse
import dataclasses
import sys
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from nbp_assets.contract.tables import HISTORY, PRODUCTS, SCORES, SIGNALS, SIMULATIONS, Table
from nbp_assets.contract.validation import ContractViolation
from nbp_assets.core import settings
from nbp_assets.core.partitions import Week
from nbp_assets.core.sql import render
from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.fairness.compute import week_gaps
from nbp_assets.fairness.config import fairness_config
from nbp_assets.simulation import trail
from nbp_assets.weekly import assets as engine
from nbp_assets.weekly.io import count_rows, replace_week, week_slice
from nbp_assets.weekly.ranking import scores_sql
from nbp_assets.weekly.weights import Weights

SANDBOX_SCHEMA = "nbp_sandbox"
SANDBOX_SIGNALS = dataclasses.replace(
    SIGNALS, name=f"{SANDBOX_SCHEMA}.signals", description="A challenger's signals (simulation only)."
)
SANDBOX_SCORES = dataclasses.replace(
    SCORES, name=f"{SANDBOX_SCHEMA}.scores", description="A challenger's scores and explanations (simulation only)."
)
SANDBOX_RANKED = dataclasses.replace(
    HISTORY,
    name=f"{SANDBOX_SCHEMA}.next_best_product",
    description="A challenger's top 3 per customer (simulation only, never published).",
)
SIMULATE_JOB = "nbp_simulate_job"

_GAP_COLUMNS = ["gap_pp", "breach", "gap_ci_low_pp", "gap_ci_high_pp", "eligibility_pp", "ranking_pp"]


@dataclass
class Simulation:
    """What a candidate configuration would change in one week, against the live model."""

    week: str
    live_model_version: str
    challenger_model_version: str
    summary: dict
    products: pd.DataFrame  # product_id, recommended and rank-1 counts live / challenger and their change
    fairness: pd.DataFrame  # product_id, dimension, gaps before / after, breach added / removed
    simulation_id: str = ""  # its row in product_intelligence.simulations (simulation/trail.py)

    def render(self) -> str:
        lines = [f"week {self.week}: live {self.live_model_version} vs challenger {self.challenger_model_version}"]
        if self.simulation_id:
            lines.append(f"  simulation {self.simulation_id} (kept in {SIMULATIONS.name}; approve it with `approve`)")
        lines += [f"  {k}: {v}" for k, v in self.summary.items()]
        lines += ["", "movement per product:", self.products.to_string(index=False)]
        changed = self.fairness[self.fairness["breach_added"] | self.fairness["breach_removed"]]
        lines += ["", f"fairness breaches the change would add or remove: {len(changed)}"]
        if len(changed):
            lines.append(changed.to_string(index=False))
        lines += ["", "fairness gaps before and after (pp):", self.fairness.to_string(index=False)]
        return "\n".join(lines)


def _ranked(table: Table, week: Week) -> str:
    return week_slice(table, week, "party_id, product_id, rank")


def _changes(warehouse: WarehouseResource, live: str, challenger: str) -> dict:
    """Customers ranked, and those whose top 1 or top 3 (as a set of products) changed."""
    counts = warehouse.query(render("simulation", "changes", live=live, challenger=challenger).text).iloc[0]
    customers, top1, top3 = (int(counts[c]) for c in ("customers", "top1_changed", "top3_changed"))

    def share(n: int) -> float:
        return round(n / customers, 6) if customers else 0.0

    return {
        "customers": customers,
        "top1_changed": top1,
        "top1_changed_share": share(top1),
        "top3_changed": top3,
        "top3_changed_share": share(top3),
    }


def _movement(warehouse: WarehouseResource, live: str, challenger: str) -> pd.DataFrame:
    moved = warehouse.query(render("simulation", "movement", live=live, challenger=challenger).text)
    moved = moved.astype({c: "int64" for c in moved.columns if c != "product_id"})
    moved["top3_change"] = moved["challenger_top3"] - moved["live_top3"]
    moved["top1_change"] = moved["challenger_top1"] - moved["live_top1"]
    return moved


def _gaps(warehouse: WarehouseResource, week: Week, ranked: str | None) -> pd.DataFrame:
    return week_gaps(warehouse, week, fairness_config(), ranked)


def _fairness_change(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    keys = ["product_id", "dimension"]
    both = before[keys + _GAP_COLUMNS].merge(
        after[keys + _GAP_COLUMNS], on=keys, how="outer", suffixes=("_live", "_challenger")
    )
    for side in ("live", "challenger"):
        both[f"breach_{side}"] = both[f"breach_{side}"].fillna(False).astype(bool)
    both["breach_added"] = both["breach_challenger"] & ~both["breach_live"]
    both["breach_removed"] = both["breach_live"] & ~both["breach_challenger"]
    return both.sort_values(keys).reset_index(drop=True)


def _published_version(warehouse: WarehouseResource, week: Week) -> str:
    """The model_version the live model published the week with; refused when it has not run."""
    ranked = week_slice(HISTORY, week)
    if not (warehouse.table_exists(HISTORY.name) and count_rows(warehouse, ranked)):
        raise ValueError(f"week {week.key} has no live ranking in {HISTORY.name}: materialize it first")
    return warehouse.scalar(render("simulation", "published_version", ranked=ranked).text)


def _rank_challenger(
    warehouse: WarehouseResource, week: Week, challenger: Weights, live: Weights, log, recompute_signals: bool
) -> None:
    """The challenger's signals (the live ones when the code and suitability rule are the
    same), scores and top 3 of the week, into the sandbox, with the weekly model's own SQL."""
    for table in (SANDBOX_SIGNALS, SANDBOX_SCORES, SANDBOX_RANKED):
        warehouse.ensure_table(table)
    with warehouse.transaction() as tx:
        if challenger.signals_version == live.signals_version and not recompute_signals:
            signals = week_slice(SIGNALS, week)  # same code and suitability rule: the live signals
            shards = engine.week_shards(tx, warehouse, week)
            # an earlier simulation's signals of the week must not pass for this one's
            replace_week(tx, SANDBOX_SIGNALS, week, render("simulation", "no_rows", relation=signals).text)
        else:
            relations, *_ = engine.week_signal_relations(warehouse, week, challenger)
            _, shards, _ = engine.write_signals(tx, warehouse, SANDBOX_SIGNALS, week, relations, log)
            signals = week_slice(SANDBOX_SIGNALS, week)
        scored = scores_sql(signals, week_slice(PRODUCTS, week), challenger, challenger.model_version)
        replace_week(tx, SANDBOX_SCORES, week, scored)
        scores = week_slice(SANDBOX_SCORES, week, "party_id, product_id, score, primary_signal")
        top_n = engine.top_n_by_shard(warehouse, week, scores, challenger.model_version, shards)
        replace_week(tx, SANDBOX_RANKED, week, top_n, log)


def simulate_week(
    warehouse: WarehouseResource, week: Week, challenger: Weights, live: Weights, log, recompute_signals: bool = False
) -> Simulation:
    """Rank `week` with `challenger` into the sandbox and compare it with the live week. The
    week must have run live (its signals, scores and history are read, never written). The
    live week's signals are reused unless the challenger's suitability rule differs or
    `recompute_signals` (a code change to try: the signals of the code running now)."""
    with warehouse.session():
        published_version = _published_version(warehouse, week)
        if published_version != live.model_version:
            log.warning(
                f"week {week.key} was published by {published_version}; the live weights now are "
                f"{live.model_version}: the comparison is against the published week"
            )
        _rank_challenger(warehouse, week, challenger, live, log, recompute_signals)
        live_ranked, challenger_ranked = _ranked(HISTORY, week), _ranked(SANDBOX_RANKED, week)
        summary = _changes(warehouse, live_ranked, challenger_ranked)
        products = _movement(warehouse, live_ranked, challenger_ranked)
        change = _fairness_change(_gaps(warehouse, week, None), _gaps(warehouse, week, challenger_ranked))
    summary["breaches_live"] = int(change["breach_live"].sum())
    summary["breaches_challenger"] = int(change["breach_challenger"].sum())
    summary["breaches_added"] = int(change["breach_added"].sum())
    summary["breaches_removed"] = int(change["breach_removed"].sum())
    summary["sandbox"] = SANDBOX_RANKED.name
    result = Simulation(week.key, str(published_version), challenger.model_version, summary, products, change)
    # the trail: every simulation is kept, with the challenger's weights (docs/governance.md)
    result.simulation_id = trail.record_simulation(warehouse, week, result, challenger, settings.operator_name())
    return result


# ----------------------------------------------------------------------------- CLI and UI


class _Say:
    """The CLI's log: progress and warnings on stderr, the report on stdout."""

    def info(self, message: str) -> None:
        print(message, file=sys.stderr)

    warning = info


def _refused(message: str) -> SystemExit:
    """Bad input, refused before anything was written: the reason on stderr, exit code 2."""
    print(f"simulate: {message}", file=sys.stderr)
    return SystemExit(2)


def rejected_weights(exc: ContractViolation) -> str:
    """A rejected weights file in plain lines: one per problem, naming the file, the column and
    example rows (row N = line N+1 of a CSV file)."""
    lines = []
    for v in exc.violations:
        where = "" if v.column.startswith("(") else f"column '{v.column}': "
        examples = "; ".join(
            (f"row {ex['row']} (line {ex['row'] + 1}): " if ex.get("row") is not None else "")
            + ", ".join(f"{k}={val!r}" for k, val in ex.items() if k != "row")
            for ex in v.examples
        )
        rows = f" [{v.failing_rows} row(s)], e.g. {examples}" if examples else ""
        lines.append(f"--weights {exc.source}: {where}{v.check}{rows}")
    return "\n".join(lines)


def cmd_simulate(args: argparse.Namespace) -> None:
    from nbp_assets.resources import deployment_weights, open_warehouse
    from nbp_assets.sources.loader import read_weights

    try:  # the user's input first: nothing is opened or written for a bad one
        week = Week.from_key(args.week)
        challenger = read_weights(args.weights)
    except ContractViolation as exc:
        raise _refused(rejected_weights(exc)) from None
    except ValueError as exc:
        raise _refused(f"--week {args.week}: {exc} (weeks are keyed by their Monday, e.g. 2026-11-09)") from None
    try:
        result = simulate_week(
            open_warehouse(), week, challenger, deployment_weights(), _Say(), recompute_signals=args.recompute_signals
        )
    except ValueError as exc:  # a week that has not run live: refused before the sandbox is written
        raise _refused(str(exc)) from None
    print(result.render())


def add_parser(sub) -> None:
    """Register `simulate` on the CLI (nbp_assets/cli.py)."""
    summary = (
        "rank a week with a candidate weights file into the sandbox schema "
        f"({SANDBOX_SCHEMA}) and compare it with the live week, fairness included"
    )
    p = sub.add_parser(
        "simulate",
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}. The history and nbp_current are only read. "
        "Exit codes: 0 the report was printed; 2 refused before anything was written (a bad weights "
        "file, not a week, a week the live model has not run), the reason on stderr.",
    )
    p.add_argument(
        "--weights",
        required=True,
        help="the candidate weights CSV (product_class, signal, weight) (required, no default)",
    )
    p.add_argument(
        "--week",
        required=True,
        help="a week the live model has run (Monday key, e.g. 2026-11-09) (required, no default)",
    )
    p.add_argument(
        "--recompute-signals",
        action="store_true",
        help="compute the signals with the code running now (to try a code change) "
        "(default: reuse the live week's signals)",
    )
    p.set_defaults(func=cmd_simulate)


class SimulateConfig(dg.Config):
    weights_file: str
    week: str
    recompute_signals: bool = False  # try a code change: the signals of the code deployed now


@dg.op(
    description="Rank the week with the candidate weights file into the sandbox schema (never the history "
    "or nbp_current) and report against the live model: top 1 / top 3 changes, movement per "
    "product, fairness gaps and breaches before and after."
)
def simulate_challenger(context: dg.OpExecutionContext, config: SimulateConfig, warehouse: WarehouseResource):
    from nbp_assets.resources import deployment_weights
    from nbp_assets.sources.loader import read_weights

    result = simulate_week(
        warehouse,
        Week.from_key(config.week),
        read_weights(config.weights_file),
        deployment_weights(),
        context.log,
        config.recompute_signals,
    )
    changed = result.fairness[result.fairness["breach_added"] | result.fairness["breach_removed"]]
    context.add_output_metadata(
        {
            **{k: v for k, v in result.summary.items()},
            "simulation_id": result.simulation_id,
            "live_model_version": result.live_model_version,
            "challenger_model_version": result.challenger_model_version,
            "movement_per_product": dg.MetadataValue.md(result.products.to_markdown(index=False)),
            "fairness_breaches_changed": dg.MetadataValue.md(
                changed.to_markdown(index=False) if len(changed) else "none"
            ),
            "fairness_gaps": dg.MetadataValue.md(result.fairness.to_markdown(index=False)),
        }
    )


@dg.job(
    name=SIMULATE_JOB,
    description="Challenger simulation: a candidate weights file ranked into the sandbox "
    "and compared with the live week before it ships.",
    executor_def=dg.in_process_executor,
)
def simulate_job():
    simulate_challenger()


def simulate_definitions() -> dg.Definitions:
    return dg.Definitions(jobs=[simulate_job])
