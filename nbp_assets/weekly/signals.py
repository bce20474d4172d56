"""Ranking signals for every eligible (party, product) pair of a week, each in [0, 1].

The seed's ranking table, one column per signal:
- relationship_gap: share of same-segment peers holding the product ("most customers like
  you have this; you don't"). Products the party already holds are not candidates at all.
- churn_risk: the party's MOD-040 churn probability, on retention products only.
- rote_uplift: how far the product's target ROTE exceeds the party's MOD-106 ROTE.
- idle_cash: months of spend sitting in the current account beyond a 3-month buffer.
- regular_fx: share of the last 6 months with FX activity.
- spend_affinity: the product serves the party's top spend category.
- cooling_off (penalty): an offer of this product was rejected within 90 days.
- lifecycle (penalty): the product is in sunset (1.0) or under capacity (0.5).
- suitability (penalty): the customer's financial health (MOD-040) is below the threshold of
  the product's class (model/suitability.py); pairs the rule suppresses are not candidates.
Beside the signals, financial_health (MOD-040 score / 100, NULL without a MOD-040 row) is
kept per pair: the suitability rule's input, shown in every explanation.

Which signal matters for which product is decided by the weights per product class, not
here: this module only measures (and drops the pairs a suitability rule suppresses). It is
one SQL query (`signals_sql`) over the week's input relations, run where the data lives
(DuckDB locally, Snowflake in production). Every expression is written so that it gives
numpy's answer bit for bit (model/sqltext.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from nbp_assets.contract.vocabulary import ALL_SIGNALS
from nbp_assets.core.sqltext import clip01, dbl, lit, round6, timestamp, within
from nbp_assets.weekly.suitability import HEALTH_SCALE, SUPPRESS

COOLING_OFF_DAYS = 90  # a rejection this many days or fewer before evaluation still counts
IDLE_CASH_BUFFER_MONTHS = 3.0  # spend a current account should hold anyway
IDLE_CASH_FULL_MONTHS = 12.0  # this many months of spend or more is fully idle
MIN_MONTHLY_SPEND = 100.0  # avoid dividing by ~0 for customers who barely spend
ROTE_UPLIFT_SCALE = 0.20  # a product 20 ROTE points above the customer scores 1
LIFECYCLE_PENALTY = {"SUNSET": 1.0, "UNDER_CAPACITY": 0.5}
FX_MONTHS = 6.0  # regular_fx is the share of the last six months with FX activity


@dataclass
class WeekInputs:
    """Everything the signals need for one week as in-memory frames (tests, small runs)."""

    candidates: pd.DataFrame  # party_id, product_id: ELIGIBLE pairs of active customers
    customers: pd.DataFrame  # party_id, segment (active customers)
    products: pd.DataFrame  # product_id, product_class, lifecycle_stage, is_retention, spend_category, target_rote
    holdings: pd.DataFrame  # party_id, product_id: open at the evaluation date
    churn: pd.DataFrame  # party_id, churn_probability, financial_health_score
    behaviour: pd.DataFrame  # party_id, current_account_balance, monthly_spend, fx_active_months_6m, top_spend_category
    rejections: pd.DataFrame  # party_id, product_id, outcome_at: REJECTED offers decided before evaluation
    evaluation_date: date
    rote: pd.DataFrame | None = None  # party_id, customer_rote; None when MOD-106 is absent


@dataclass
class SignalReport:
    """What the run should tell its operator about the signals (goes to UI metadata)."""

    dropped_signals: list[str] = field(default_factory=list)
    parties_without_churn: int = 0
    parties_without_behaviour: int = 0
    parties_without_rote: int = 0
    pairs_in_cooling_off: int = 0
    pairs_already_held: int = 0
    pairs_suppressed_unsuitable: int = 0
    pairs_down_weighted_unsuitable: int = 0


@dataclass(frozen=True)
class SignalRelations:
    """The week's inputs as SQL relations (table names or parenthesised subqueries), with
    the columns WeekInputs lists; the point-in-time readers (sources/week_inputs.py) or a
    test's in-memory tables provide them."""

    candidates: str
    customers: str
    products: str
    holdings: str
    churn: str
    behaviour: str
    rejections: str
    evaluation_date: date
    rote: str | None = None
    # A shard of the week: a predicate on party_id that keeps the per-party work to one range of
    # customers (bounded memory at any bank size). The peer statistics stay bank-wide: `peers`
    # names a relation computed once by `peers_sql` (segment, product_id, share); without it
    # they are computed inline.
    parties: str | None = None
    peers: str | None = None
    # The suitability rules (model/suitability.py rules_relation): product_class, health_below,
    # penalty. None: no rule, the suitability signal is 0 everywhere.
    suitability: str | None = None

    @property
    def dropped_signals(self) -> list[str]:
        return ["rote_uplift"] if self.rote is None else []


def _of_shard(relation: str, r: SignalRelations) -> str:
    return within(relation, r.parties)


def _held(holdings: str, active: str, products: str) -> str:
    """Open holdings of active customers in registered products, once per pair, with the
    customer's segment (carried from the one join, not joined again)."""
    return (
        f"(SELECT DISTINCT h.party_id, h.product_id, a.segment FROM {holdings} h "
        f"JOIN {active} a ON a.party_id = h.party_id "
        f"JOIN (SELECT product_id FROM {products}) p ON p.product_id = h.product_id)"
    )


def _peers_ctes(r: SignalRelations) -> str:
    """relationship_gap's peer statistic, bank-wide whatever the shard: per segment and
    product, the share of the segment's active customers who hold the product."""
    active = f"(SELECT party_id, segment FROM {r.customers})"
    return f"""segment_size AS (
    SELECT segment, count(*) AS customers FROM {active} a GROUP BY segment
),
holders AS (
    SELECT held.segment, held.product_id, count(*) AS holders
    FROM {_held(r.holdings, active, r.products)} held
    GROUP BY held.segment, held.product_id
),
peers AS (
    SELECT hs.segment, hs.product_id,
           CAST(hs.holders AS DOUBLE) / CAST(greatest(ss.customers, 1) AS DOUBLE) AS share
    FROM holders hs JOIN segment_size ss ON ss.segment = hs.segment
)"""


def peers_sql(r: SignalRelations) -> str:
    """segment, product_id, share: computed once per week when the week runs in shards."""
    return f"WITH {_peers_ctes(r)}\nSELECT segment, product_id, share FROM peers"


_HEALTH = round6(f"ch.financial_health_score / {dbl(HEALTH_SCALE)}")


def _inputs_ctes(r: SignalRelations) -> str:
    ev = r.evaluation_date
    cooling_from = ev - timedelta(days=COOLING_OFF_DAYS)
    lifecycle = " ".join(f"WHEN {lit(k)} THEN {dbl(v)}" for k, v in LIFECYCLE_PENALTY.items())
    rote = (
        f"SELECT party_id, customer_rote FROM {_of_shard(r.rote, r)}"
        if r.rote
        else "SELECT CAST(NULL AS VARCHAR) AS party_id, CAST(NULL AS DOUBLE) AS customer_rote WHERE 1 = 0"
    )
    # The active customers and the held pairs are written inline wherever they are used,
    # not as shared CTEs: an engine keeps a CTE read twice in memory (at 10M customers the
    # held pairs alone outgrew DuckDB's 1 GB), where inline subqueries stream and spill.
    active = f"(SELECT party_id, segment FROM {_of_shard(r.customers, r)})"
    peers = _peers_ctes(r) if r.peers is None else f"peers AS (SELECT segment, product_id, share FROM {r.peers})"
    rules = r.suitability or (
        "(SELECT CAST(NULL AS VARCHAR) AS product_class, CAST(NULL AS DOUBLE) AS health_below, "
        "CAST(NULL AS DOUBLE) AS penalty WHERE 1 = 0)"
    )
    return f"""
products AS (
    SELECT pr.product_id, pr.product_class, pr.is_retention, pr.spend_category, pr.target_rote,
           CASE pr.lifecycle_stage {lifecycle} ELSE 0.0e0 END AS lifecycle_penalty,
           coalesce(u.health_below, 0.0e0) AS health_below, coalesce(u.penalty, 0.0e0) AS suitability_penalty
    FROM {r.products} pr
    LEFT JOIN {rules} u ON u.product_class = pr.product_class
),
{peers},
-- cooling-off counts by calendar day: rejected from E-{COOLING_OFF_DAYS} 00:00 up to, not including, E
cooling_off AS (
    SELECT DISTINCT party_id, product_id FROM {_of_shard(r.rejections, r)}
    WHERE outcome_at >= {timestamp(cooling_from)} AND outcome_at < {timestamp(ev)}
),
churn AS (SELECT party_id, churn_probability, financial_health_score FROM {_of_shard(r.churn, r)}),
behaviour AS (
    SELECT party_id, current_account_balance, monthly_spend, fx_active_months_6m, top_spend_category
    FROM {_of_shard(r.behaviour, r)}
),
rote AS ({rote}),
-- every per-party input joined once on the ~1M parties, not on the ~10M candidate pairs
party AS (
    SELECT a.party_id, a.segment, ch.churn_probability,
           {_HEALTH} AS financial_health,
           b.current_account_balance, b.monthly_spend,
           b.fx_active_months_6m, b.top_spend_category, ro.customer_rote
    FROM {active} a
    LEFT JOIN churn ch ON ch.party_id = a.party_id
    LEFT JOIN behaviour b ON b.party_id = a.party_id
    LEFT JOIN rote ro ON ro.party_id = a.party_id
),
-- a product the party already holds is not a *next* product: it leaves the candidates
candidates AS ({_not_held(_of_shard(r.candidates, r), r)})"""


def _not_held(pairs: str, r: SignalRelations) -> str:
    """The (party_id, product_id) rows of `pairs` that are not a holding open at the
    evaluation date. The pairs are of active customers and registered products already, so
    the holdings are read as they are: an outer join needs no DISTINCT (a held pair is
    dropped however often it is held), and it costs half of NOT EXISTS in DuckDB."""
    return (
        f"SELECT k.party_id, k.product_id FROM {pairs} k "
        f"LEFT JOIN {_of_shard(r.holdings, r)} h ON h.party_id = k.party_id AND h.product_id = k.product_id "
        "WHERE h.party_id IS NULL"
    )


# NULL health (no MOD-040 row) compares as unknown: not known to be in difficulty
_UNSUITABLE = "coalesce(a.financial_health < p.health_below, FALSE)"
_SUPPRESSED = f"({_UNSUITABLE} AND p.suitability_penalty >= {dbl(SUPPRESS)})"


def _measured_sql(r: SignalRelations) -> str:
    """Every candidate pair with its signals, financial_health and `suppressed` (the
    suitability rule keeps the pair out of the ranking)."""
    idle_span = dbl(IDLE_CASH_FULL_MONTHS - IDLE_CASH_BUFFER_MONTHS)
    raw = {
        # no peer holds it: 0/customers, which is exactly 0.0
        "relationship_gap": "coalesce(pr.share, 0.0e0)",
        "churn_risk": "CASE WHEN p.is_retention THEN coalesce(a.churn_probability, 0.0e0) ELSE 0.0e0 END",
        "rote_uplift": "CASE WHEN a.customer_rote IS NULL THEN 0.0e0 ELSE "
        + clip01(f"(p.target_rote - a.customer_rote) / {dbl(ROTE_UPLIFT_SCALE)}")
        + " END",
        "idle_cash": clip01(
            f"(coalesce(a.current_account_balance, 0.0e0) / greatest(coalesce(a.monthly_spend, 0.0e0), "
            f"{dbl(MIN_MONTHLY_SPEND)}) - {dbl(IDLE_CASH_BUFFER_MONTHS)}) / {idle_span}"
        ),
        "regular_fx": clip01(f"CAST(coalesce(a.fx_active_months_6m, 0) AS DOUBLE) / {dbl(FX_MONTHS)}"),
        "spend_affinity": "CASE WHEN a.top_spend_category = p.spend_category THEN 1.0e0 ELSE 0.0e0 END",
        "cooling_off": "CASE WHEN co.party_id IS NULL THEN 0.0e0 ELSE 1.0e0 END",
        "lifecycle": "p.lifecycle_penalty",
    }
    columns = ",\n    ".join(f"{round6(expr)} AS {name}" for name, expr in raw.items())
    return f"""WITH {_inputs_ctes(r)}
SELECT
    k.party_id,
    k.product_id,
    {columns},
    {round6(f"CASE WHEN {_UNSUITABLE} THEN 1.0e0 ELSE 0.0e0 END")} AS suitability,
    a.financial_health,
    {_SUPPRESSED} AS suppressed
FROM candidates k
JOIN party a ON a.party_id = k.party_id
JOIN products p ON p.product_id = k.product_id
LEFT JOIN peers pr ON pr.segment = a.segment AND pr.product_id = k.product_id
LEFT JOIN cooling_off co ON co.party_id = k.party_id AND co.product_id = k.product_id"""


def signals_sql(r: SignalRelations) -> str:
    """party_id, product_id, every signal (ALL_SIGNALS order, rounded to 6 dp) and
    financial_health, for the candidates the suitability rule does not suppress."""
    return (
        f"SELECT party_id, product_id, {', '.join(ALL_SIGNALS)}, financial_health\n"
        f"FROM ({_measured_sql(r)}) m\nWHERE NOT m.suppressed"
    )


def suppressed_sql(r: SignalRelations) -> str:
    """One row: how many candidate pairs the suitability rule suppressed. Only the inputs the
    rule reads are joined (not the signals), so counting costs a fraction of the signals."""
    # The rule first, the holdings after: the anti-join then runs on the few suppressed pairs.
    # The GROUP BY (a no-op: candidate pairs are unique) keeps it that way, as an engine does
    # not reorder joins across an aggregate; without it DuckDB anti-joined all ~10M candidates
    # first (1.0 CPU s at 1M customers, for ~100k suppressed pairs).
    # The candidates are active customers already, and the rule reads only the MOD-040 health:
    # churn alone is joined, not the party row's four inputs (a party without a MOD-040 row is
    # not known to be in difficulty, and the inner join drops it as the rule would).
    by_rule = f"""(SELECT k.party_id, k.product_id
    FROM {_of_shard(r.candidates, r)} k
    JOIN (SELECT party_id, {_HEALTH} AS financial_health FROM churn ch) a ON a.party_id = k.party_id
    JOIN products p ON p.product_id = k.product_id
    WHERE {_SUPPRESSED}
    GROUP BY k.party_id, k.product_id)"""
    return f"""WITH {_inputs_ctes(r)}
SELECT count(*) AS pairs_suppressed_unsuitable
FROM ({_not_held(by_rule, r)}) s"""


def report_sql(r: SignalRelations) -> str:
    """One row: the active parties without a churn, behaviour or ROTE row (their values are
    never NULL by contract, so a NULL after the outer join means no row)."""
    return f"""WITH {_inputs_ctes(r)}
SELECT
    count(CASE WHEN churn_probability IS NULL THEN 1 END) AS parties_without_churn,
    count(CASE WHEN monthly_spend IS NULL THEN 1 END) AS parties_without_behaviour,
    count(CASE WHEN customer_rote IS NULL THEN 1 END) AS parties_without_rote
FROM party"""
