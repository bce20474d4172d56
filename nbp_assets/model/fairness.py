"""Weekly fairness report: is any product recommended far more to one group than another?

CON-001 requires that no protected characteristic systematically suppresses a product's
recommendations. Each week, for every product, the share of active customers who got it
in their top 3 is compared across jurisdictions, age bands and segments; a spread of
more than 10 percentage points between the highest and lowest group of one dimension
is a breach, which raises the nbp.fairness_breach alert for compliance review.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

DEFAULT_DIMENSIONS = ("jurisdiction", "age_band", "segment")
BREACH_THRESHOLD_PP = 10.0
# Customers with no value for a dimension stay in the report as their own group rather
# than vanishing from the denominator.
UNKNOWN_GROUP = "(unknown)"

RATE_COLUMNS = ["product_id", "dimension", "group", "customers", "recommended", "rate"]
GAP_COLUMNS = [
    "product_id", "dimension", "highest_group", "highest_rate",
    "lowest_group", "lowest_rate", "gap_pp", "breach",
]


def recommendation_rates(
    customers: pd.DataFrame,
    ranked: pd.DataFrame,
    products: Sequence[str],
    dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
) -> pd.DataFrame:
    """Share of each group's active customers who got each product in their top 3.

    customers: the week's active customers, one row per party_id, with the dimension
    columns. ranked: the week's top-3 rows (party_id, product_id). Every product in
    `products` is reported, even one recommended to nobody (rate 0): silence about a
    product is itself a fairness signal. Customers with no recommendation at all count
    in their group's denominator; a customer with no value for a dimension is counted in
    the group "(unknown)". Recommendations for parties not in `customers`, or of
    products not in `products`, are ignored.

    Rows are ordered by product (as given), dimension (as given), group name ascending.
    """
    if customers["party_id"].duplicated().any():
        # A party counted twice would weigh double in its group's rate.
        raise ValueError("customers must have one row per party_id")
    product_index = pd.Index(pd.unique(pd.Series(list(products), dtype=object)))
    n_products = len(product_index)

    # Positions instead of joins: one integer per (customer, product) recommendation.
    who = pd.Index(customers["party_id"]).get_indexer(ranked["party_id"])
    what = product_index.get_indexer(ranked["product_id"])
    known = (who >= 0) & (what >= 0)
    # A product listed twice in one top 3 still reaches the customer once.
    pairs = pd.unique(who[known].astype(np.int64) * max(n_products, 1) + what[known])
    rec_customer, rec_product = pairs // max(n_products, 1), pairs % max(n_products, 1)

    frames = []
    for dimension in dimensions:
        column = customers[dimension]
        if column.isna().any():
            column = column.astype(object).where(column.notna(), UNKNOWN_GROUP)
        codes, groups = pd.factorize(column.astype(str), sort=True)
        n_groups = len(groups)
        sizes = np.bincount(codes, minlength=n_groups)
        hits = np.bincount(codes[rec_customer] * n_products + rec_product,
                           minlength=n_groups * n_products).reshape(n_groups, n_products)
        frames.append(pd.DataFrame({
            "_product": np.repeat(np.arange(n_products), n_groups),
            "product_id": np.repeat(product_index.to_numpy(dtype=object), n_groups),
            "dimension": dimension,
            "group": np.tile(np.asarray(groups, dtype=object), n_products),
            "customers": np.tile(sizes, n_products).astype(np.int64),
            "recommended": hits.T.reshape(-1).astype(np.int64),
        }))
    if not frames:
        return pd.DataFrame(columns=RATE_COLUMNS)
    # Stable sort keeps dimensions in the given order and groups by name within a product.
    rates = pd.concat(frames, ignore_index=True).sort_values("_product", kind="stable")
    rates["rate"] = rates["recommended"] / rates["customers"]  # groups are observed, never empty
    return rates[RATE_COLUMNS].reset_index(drop=True)


def fairness_gaps(rates: pd.DataFrame, threshold_pp: float = BREACH_THRESHOLD_PP) -> pd.DataFrame:
    """Per product and dimension: the best- and worst-served groups and the gap between them.

    gap_pp is in percentage points, rounded to 4 dp so float noise (0.6 - 0.5 is not
    exactly 0.1) cannot turn a 10.0 pp gap into a breach. breach means gap_pp is strictly
    above threshold_pp. Ties pick the group whose name sorts first, so the report is
    identical week over week for identical data.
    """
    keys = ["product_id", "dimension"]
    by_rate_down = rates.sort_values([*keys, "rate", "group"], ascending=[True, True, False, True], kind="stable")
    by_rate_up = rates.sort_values([*keys, "rate", "group"], ascending=[True, True, True, True], kind="stable")
    highest = by_rate_down.drop_duplicates(keys)[[*keys, "group", "rate"]]
    lowest = by_rate_up.drop_duplicates(keys)[[*keys, "group", "rate"]]
    gaps = highest.rename(columns={"group": "highest_group", "rate": "highest_rate"}).merge(
        lowest.rename(columns={"group": "lowest_group", "rate": "lowest_rate"}), on=keys, validate="1:1"
    )
    gaps["gap_pp"] = ((gaps["highest_rate"] - gaps["lowest_rate"]) * 100).round(4)
    gaps["breach"] = gaps["gap_pp"] > threshold_pp
    return gaps[GAP_COLUMNS].reset_index(drop=True)
