"""Why a customer got their recommendations: each product's score taken apart, from the week's
own explanation (nbp_work.scores: contributions and penalty factors as computed), for the
CLI's `show PARTY_ID` and for anyone reproducing a score by hand."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from nbp_assets.contract.tables import SCORES, SIGNALS
from nbp_assets.core.sqltext import lit, timestamp
from nbp_assets.weekly.reasons import REASONS
from nbp_assets.weekly.vocabulary import PENALTY_SIGNALS, POSITIVE_SIGNALS, contribution, factor


def week_explanation(warehouse, party_id: str, week_start: datetime) -> pd.DataFrame:
    """One row per product scored for the party that week: signals, financial_health,
    contributions, factors, score and primary_signal (empty when the week is no longer in
    nbp_work)."""
    where = f"week_start = {timestamp(week_start)} AND party_id = {lit(party_id)}"
    scores = warehouse.query(f"SELECT * FROM {SCORES.name} WHERE {where}")
    signals = warehouse.query(f"SELECT * FROM {SIGNALS.name} WHERE {where}")
    return scores.merge(signals.drop(columns=["week_start"]), on=["party_id", "product_id"], how="left")


def explanation_lines(row: dict) -> list[str]:
    """The lines under one recommendation: its reason phrase, each lifting signal's
    contribution and each penalty's factor, as the week computed them."""
    first = row.get(contribution(POSITIVE_SIGNALS[0]))
    if first is None or first != first:  # NaN: the product's row is gone from nbp_work
        return ["       (the week's explanation is no longer in nbp_work.scores)"]
    lines = [f'       reason: "{REASONS[row["primary_signal"]]}"']
    for s in POSITIVE_SIGNALS:
        lines.append(f"       {s:<17} signal {row[s]:.6f} -> contribution {row[contribution(s)]:.6f}")
    for s in PENALTY_SIGNALS:
        lines.append(f"       {s:<17} signal {row[s]:.6f} -> penalty factor {row[factor(s)]:.6f}")
    health = row.get("financial_health")
    lines.append(
        "       financial_health  " + ("no MOD-040 score" if health is None or health != health else f"{health:.6f}")
    )
    return lines
