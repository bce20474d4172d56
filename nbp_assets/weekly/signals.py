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
- suitability (penalty): the customer's financial health (MOD-040, unrounded) is below the
  threshold of the product's class, or unknown where the class fails closed
  (weekly/suitability.py); pairs the rule suppresses are not candidates, and are recorded
  with their reason in nbp_work.withheld (withheld_sql).
Beside the signals, financial_health (MOD-040 score / 100, NULL without a MOD-040 row) is
kept per pair: the suitability rule's input, shown in every explanation.

Which signal matters for which product is decided by the weights per product class, not
here: this module only measures (and drops the pairs a suitability rule suppresses). It is
one SQL query (`signals_sql`, the file weekly/sql/signals.sql) over the week's input relations, run where the data lives
(DuckDB locally, Snowflake in production). Every expression is written so that it gives
numpy's answer bit for bit (the macros of core/sql/macros.sql).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from nbp_assets.core.sql import render
from nbp_assets.weekly.suitability import HEALTH_SCALE, SUPPRESS
from nbp_assets.weekly.vocabulary import ALL_SIGNALS

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
    # of the suppressed pairs, those withheld because the health was unknown, and their customers
    pairs_withheld_unknown_health: int = 0
    parties_unknown_health_withheld: int = 0


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
    # The suitability rules (weekly/suitability.py rules_relation): product_class, health_below,
    # penalty. None: no rule, the suitability signal is 0 everywhere.
    suitability: str | None = None

    @property
    def dropped_signals(self) -> list[str]:
        return ["rote_uplift"] if self.rote is None else []


@dataclass(frozen=True)
class Constants:
    """The signals' constants, as the SQL files read them (`c.` in weekly/sql/*.sql)."""

    evaluation_date: date
    cooling_off_days: int = COOLING_OFF_DAYS
    idle_cash_buffer_months: float = IDLE_CASH_BUFFER_MONTHS
    idle_cash_full_months: float = IDLE_CASH_FULL_MONTHS
    min_monthly_spend: float = MIN_MONTHLY_SPEND
    rote_uplift_scale: float = ROTE_UPLIFT_SCALE
    lifecycle_penalty: dict = field(default_factory=lambda: dict(LIFECYCLE_PENALTY))
    fx_months: float = FX_MONTHS
    health_scale: float = HEALTH_SCALE
    suppress: float = SUPPRESS

    @property
    def cooling_from(self) -> date:
        return self.evaluation_date - timedelta(days=self.cooling_off_days)


def _render(name: str, r: SignalRelations, **params) -> str:
    return render("weekly", name, r=r, c=Constants(r.evaluation_date), **params).text


def peers_sql(r: SignalRelations, into: str | None = None) -> str:
    """segment, product_id, share: computed once per week when the week runs in shards
    (`into`: the temporary table created from it)."""
    return render("weekly", "peers", r=r, into=into).text


def signals_sql(r: SignalRelations) -> str:
    """party_id, product_id, every signal (ALL_SIGNALS order, rounded to 6 dp) and
    financial_health, for the candidates the suitability rule does not suppress."""
    return _render("signals", r, signals=ALL_SIGNALS)


def suppressed_sql(r: SignalRelations) -> str:
    """One row: how many candidate pairs the suitability rule suppressed
    (pairs_suppressed_unsuitable), how many for an unknown health
    (pairs_withheld_unknown_health) and their customers (parties_unknown_health_withheld)."""
    return _render("suppressed_pairs", r)


# The why-not record's reason per rule (nbp_work.withheld.reason)
WITHHELD_REASONS = {
    "below": "financial health below the class's threshold",
    "unknown": "financial health unknown this week (no MOD-040 score): treated as unsuitable",
}


def withheld_sql(r: SignalRelations) -> str:
    """The why-not rows (nbp_work.withheld minus week_start): every candidate pair the
    suitability rule suppressed, with its rule, the health as delivered and the threshold."""
    return _render("withheld_pairs", r, reasons=WITHHELD_REASONS)


def report_sql(r: SignalRelations) -> str:
    """One row: the active parties without a churn, behaviour or ROTE row."""
    return _render("signal_report", r)
