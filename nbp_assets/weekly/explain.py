"""Why a customer got their recommendations: each product's score taken apart, from the week's
own explanation (nbp_work.scores: contributions and penalty factors as computed), for the
CLI's `show PARTY_ID` and for anyone reproducing a score by hand; and why not: the products
the suitability rule withheld from the customer that week (nbp_work.withheld)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from nbp_assets.contract.tables import SCORES, SIGNALS, WITHHELD
from nbp_assets.core.sql import render
from nbp_assets.core.sqltext import lit, timestamp
from nbp_assets.weekly.reasons import REASONS
from nbp_assets.weekly.vocabulary import PENALTY_SIGNALS, POSITIVE_SIGNALS, contribution, factor


def week_explanation(warehouse, party_id: str, week_start: datetime) -> pd.DataFrame:
    """One row per product scored for the party that week: signals, financial_health,
    contributions, factors, score and primary_signal (empty when the week is no longer in
    nbp_work)."""
    where = f"week_start = {timestamp(week_start)} AND party_id = {lit(party_id)}"
    scores = warehouse.query(render("core", "select", columns="*", relation=SCORES.name, where=where).text)
    signals = warehouse.query(render("core", "select", columns="*", relation=SIGNALS.name, where=where).text)
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


def week_withheld(warehouse, party_id: str, week_start: datetime, products: pd.DataFrame | None = None) -> pd.DataFrame:
    """The products the suitability rule withheld from the party that week (nbp_work.withheld),
    by product_id, with product_name when `products` (product_id, product_name) is given."""
    where = f"week_start = {timestamp(week_start)} AND party_id = {lit(party_id)}"
    if not warehouse.table_exists(WITHHELD.name):  # weeks run before the why-not record existed
        return pd.DataFrame(columns=[c for c in WITHHELD.columns if c != "week_start"])
    rows = warehouse.query(
        render("core", "select", columns="*", relation=WITHHELD.name, where=where, order_by="product_id").text
    )
    rows = rows.drop(columns=["week_start"])
    if products is not None:
        rows = rows.merge(products[["product_id", "product_name"]], on="product_id", how="left")
    return rows


def withheld_lines(withheld: pd.DataFrame) -> list[str]:
    """The `show` section "withheld this week": one line per product and why."""
    lines = ["  withheld this week (suitability, CON-006):"]
    if withheld.empty:
        return lines + ["    none"]
    for row in withheld.to_dict("records"):
        score = row["financial_health_score"]
        health = "unknown" if score is None or score != score else f"{score:g} (financial health {score / 100:.7g})"
        name = row.get("product_name")
        named = f"{row['product_id']} {name}" if isinstance(name, str) else row["product_id"]
        lines.append(
            f"    {named} ({row['product_class']}): rule {row['rule']}, MOD-040 score {health}, "
            f"threshold {row['health_below']:g}: {row['reason']}"
        )
    return lines
