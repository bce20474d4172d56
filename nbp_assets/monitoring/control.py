"""The control group's comparison (docs/monitoring.md, "Treated against held out"): the
acceptance of the offers made to treated customers (their top 3 was published) and to
held-out customers (ranked, not published), per product, with Wilson 95% intervals and the
difference with Newcombe's interval built from them (fairness/maths.py).

Held-out customers still receive offers: MOD-108 offers through its own channels whatever
the ranking, and those offers are in offer_history. That is what makes the comparison mean
something: the same offer engine, the same products, with and without the published ranking.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nbp_assets.core.sql import render
from nbp_assets.fairness.maths import difference_interval, wilson_interval

ALL_PRODUCTS = "(all)"
ARMS = ("treated", "held_out")
COLUMNS = [
    "product_id",
    *(f"{arm}_{c}" for arm in ARMS for c in ("offered", "accepted", "acceptance_rate", "ci_low", "ci_high")),
    "difference_pp",
    "difference_ci_low_pp",
    "difference_ci_high_pp",
]


def published_ranking_sql(ranked: str, control: str) -> str:
    """The week's history less its held-out customers: the top 3 the apps saw."""
    return render("monitoring", "published_ranking", ranked=ranked, control=control).text


def control_arms_sql(offers: str, ranked: str, control: str) -> str:
    """product_id, arm, offered, accepted (monitoring/sql/control_arms.sql)."""
    return render(
        "monitoring", "control_arms", offers=offers, ranked=ranked, control=control, all_products=ALL_PRODUCTS
    ).text


def comparison(arms: pd.DataFrame) -> pd.DataFrame:
    """One row per product (and ALL_PRODUCTS first): each arm's offers, acceptances, rate and
    Wilson 95% interval, and treated - held-out in percentage points with its 95% interval.
    A rate of an arm without offers is NaN, and so is the difference."""
    if arms.empty:
        kinds = {c: "int64" for c in COLUMNS if c.endswith(("_offered", "_accepted"))}
        return pd.DataFrame(
            {c: pd.Series(dtype=kinds.get(c, object if c == "product_id" else "float64")) for c in COLUMNS}
        )
    wide = arms.astype({"offered": "int64", "accepted": "int64"}).pivot_table(
        index="product_id", columns="arm", values=["offered", "accepted"], aggfunc="sum", fill_value=0
    )
    out = pd.DataFrame({"product_id": wide.index.astype(object)})
    for arm in ARMS:
        n = wide["offered"][arm].to_numpy() if arm in wide["offered"] else np.zeros(len(wide), dtype="int64")
        k = wide["accepted"][arm].to_numpy() if arm in wide["accepted"] else np.zeros(len(wide), dtype="int64")
        low, high = wilson_interval(k, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = k / n
        out[f"{arm}_offered"], out[f"{arm}_accepted"] = n.astype("int64"), k.astype("int64")
        out[f"{arm}_acceptance_rate"] = np.where(n > 0, rate, np.nan)
        out[f"{arm}_ci_low"], out[f"{arm}_ci_high"] = np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)
    both = (out["treated_offered"] > 0) & (out["held_out_offered"] > 0)
    low, high = difference_interval(
        out["treated_accepted"], out["treated_offered"], out["held_out_accepted"], out["held_out_offered"]
    )
    difference = out["treated_acceptance_rate"] - out["held_out_acceptance_rate"]
    out["difference_pp"] = np.where(both, (difference * 100).round(4), np.nan)
    out["difference_ci_low_pp"] = np.where(both, np.round(low * 100, 4), np.nan)
    out["difference_ci_high_pp"] = np.where(both, np.round(high * 100, 4), np.nan)
    order = out["product_id"].ne(ALL_PRODUCTS)  # the whole first, then product by product
    return out.assign(_o=order).sort_values(["_o", "product_id"]).drop(columns="_o")[COLUMNS].reset_index(drop=True)
