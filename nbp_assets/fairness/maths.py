"""Weekly fairness report: is any product recommended far more to one group than another?

CON-001 requires that no protected characteristic systematically suppresses a product's
recommendations. Each week, for every product, the share of active customers who got it
in their top 3 is compared across the groups of each dimension (jurisdiction, age band
and segment by default); a spread of more than 10 percentage points between the highest
and lowest judged group of one dimension is a breach, which raises the
nbp.fairness_breach alert for compliance review.

Three refinements make the report actionable:
- Every rate carries a Wilson 95% confidence interval, and groups smaller than a minimum
  size are listed but not judged: a handful of customers cannot show a pattern.
- Beside the raw rate stands the rate among the group's customers who were ELIGIBLE for
  the product (CON-006). rate = eligible share x rate among eligible, so the gap between
  the highest and lowest group splits exactly into a part caused by eligibility and a
  part caused by the ranking; with the suitability rule's withheld pairs, a part caused
  by suitability is split off the ranking's (see `fairness_gaps`).
- The gap of every product over the last weeks (`gap_history`) shows whether a breach
  is a one-off or a systematic pattern.

The breach is judged on the raw recommendation rate, as MOD-107 states it: a gap that
comes only from eligibility still reaches compliance, labelled as such.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nbp_assets.fairness.contract import DEFAULT_DIMENSIONS, INTERSECTION, intersection_parts

BREACH_THRESHOLD_PP = 10.0
DEFAULT_MIN_GROUP_SIZE = 30
Z_95 = 1.959963984540054
# Customers with no value for a dimension stay in the report as their own group rather
# than vanishing from the denominator.
UNKNOWN_GROUP = "(unknown)"

RATE_COLUMNS = ["product_id", "dimension", "group", "customers", "recommended", "rate", "ci_low", "ci_high"]
ELIGIBLE_COLUMNS = ["eligible", "eligible_rate"]
SUITABLE_COLUMNS = ["suitable", "suitable_rate"]
GAP_COLUMNS = [
    "product_id",
    "dimension",
    "highest_group",
    "highest_rate",
    "lowest_group",
    "lowest_rate",
    "gap_pp",
    "breach",
]
GAP_DETAIL_COLUMNS = [
    "highest_customers",
    "lowest_customers",
    "groups",
    "judged_groups",
    "gap_ci_low_pp",
    "gap_ci_high_pp",
    "clear_breach",
]
ATTRIBUTION_COLUMNS = [
    "highest_eligible_share",
    "lowest_eligible_share",
    "highest_eligible_rate",
    "lowest_eligible_rate",
    "eligible_gap_pp",
    "eligibility_pp",
    "ranking_pp",
]
SUITABILITY_COLUMNS = [
    "highest_suitable_share",
    "lowest_suitable_share",
    "highest_suitable_rate",
    "lowest_suitable_rate",
    "suitability_pp",
]
KEYS = ["product_id", "dimension"]


def wilson_interval(successes, trials, z: float = Z_95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion: stays inside [0, 1] and is honest for small
    groups and rates near 0 or 1, where the textbook +-1.96 SE interval is not."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denominator = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denominator
        half = z / denominator * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def difference_interval(k1, n1, k2, n2, z: float = Z_95) -> tuple[np.ndarray, np.ndarray]:
    """95% interval of the difference of two independent proportions k1/n1 - k2/n2:
    Newcombe's hybrid score interval (1998, method 10), built from the two Wilson
    intervals. Like them it stays honest for small groups and rates near 0 or 1, where
    the textbook +-1.96 SE of the difference is too narrow."""
    k1, n1, k2, n2 = (np.asarray(v, dtype=float) for v in (k1, n1, k2, n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    return d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def group_labels(column: pd.Series) -> pd.Series:
    """A dimension's group names: missing values become the group \"(unknown)\"."""
    if column.isna().any():
        column = column.astype(object).where(column.notna(), UNKNOWN_GROUP)
    return column.astype(str)


def with_intersections(combos: pd.DataFrame, intersections: Sequence[str]) -> pd.DataFrame:
    """Counts per combination of group values, with one more column per intersection
    (`jurisdiction*age_band`) holding its group (`IE*25-34`; a missing value is "(unknown)"),
    so an intersection is summed and judged like any dimension."""
    if not len(intersections):
        return combos
    columns = {}
    for name in intersections:
        a, b = intersection_parts(name)
        columns[name] = group_labels(combos[a]) + INTERSECTION + group_labels(combos[b])
    return combos.assign(**columns)


def count_eligible(customers: pd.DataFrame, pairs: pd.DataFrame, dimensions: Sequence[str]) -> pd.DataFrame:
    """Eligible (party, product) pairs counted per product and combination of dimension
    values: the shape the warehouse returns from one GROUP BY, so 20M pairs never leave it."""
    joined = (
        pairs[["party_id", "product_id"]]
        .drop_duplicates()
        .merge(customers[["party_id", *dimensions]], on="party_id", how="inner")
    )
    counts = joined.groupby(["product_id", *dimensions], dropna=False).size()
    return counts.rename("eligible").reset_index()


def recommendation_rates(
    customers: pd.DataFrame,
    ranked: pd.DataFrame,
    products: Sequence[str],
    dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
    eligible: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Share of each group's active customers who got each product in their top 3.

    customers: the week's active customers, one row per party_id, with the dimension
    columns. ranked: the week's top-3 rows (party_id, product_id). Every product in
    `products` is reported, even one recommended to nobody (rate 0): silence about a
    product is itself a fairness signal. Customers with no recommendation at all count
    in their group's denominator; a customer with no value for a dimension is counted in
    the group "(unknown)". Recommendations for parties not in `customers`, or of
    products not in `products`, are ignored. ci_low/ci_high: Wilson 95% interval.

    eligible (optional, from `count_eligible` or the warehouse): adds `eligible`, the
    group's customers eligible for the product, and `eligible_rate` = recommended /
    eligible (NaN when nobody in the group is eligible). With a `withheld` column (the
    eligible pairs the suitability rule withheld) it also adds `suitable` = eligible -
    withheld and `suitable_rate` = recommended / suitable (NaN when none is suitable).

    Rows are ordered by product (as given), dimension (as given), group name ascending.
    """
    if customers["party_id"].duplicated().any():
        # A party counted twice would weigh double in its group's rate.
        raise ValueError("customers must have one row per party_id")
    product_index = pd.Index(pd.unique(pd.Series(list(products), dtype=object)))
    # A product listed twice in one top 3 still reaches the customer once.
    ranked = ranked[["party_id", "product_id"]].drop_duplicates()
    ranked = ranked[ranked["product_id"].isin(product_index)]
    sizes, hits = [], []
    for dimension in dimensions:
        groups = customers[["party_id"]].assign(dimension=dimension, group=group_labels(customers[dimension]))
        sizes.append(groups.groupby(["dimension", "group"]).size().rename("customers").reset_index())
        joined = ranked.merge(groups, on="party_id", how="inner")
        hits.append(joined.groupby(["product_id", "dimension", "group"]).size().rename("recommended").reset_index())
    return rates_from_counts(
        pd.concat(sizes, ignore_index=True) if sizes else pd.DataFrame(columns=["dimension", "group", "customers"]),
        pd.concat(hits, ignore_index=True)
        if hits
        else pd.DataFrame(columns=["product_id", "dimension", "group", "recommended"]),
        list(product_index),
        dimensions,
        eligible,
    )


def rates_from_counts(
    sizes: pd.DataFrame,
    hits: pd.DataFrame,
    products: Sequence[str],
    dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
    eligible: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """`recommendation_rates` from counts the warehouse computes in a few GROUP BYs.

    sizes: (dimension, group, customers): active customers per group (missing values
    already labelled "(unknown)"). hits: (product_id, dimension, group, recommended):
    customers of the group with the product in their top 3. Same rows and order as
    `recommendation_rates`."""
    product_index = pd.Index(pd.unique(pd.Series(list(products), dtype=object)))
    n_products = len(product_index)
    suitability = eligible is not None and "withheld" in eligible.columns
    frames = []
    for dimension in dimensions:
        size = sizes[sizes["dimension"] == dimension].set_index("group")["customers"]
        groups = sorted(str(g) for g in size.index)
        n_groups = len(groups)
        hit = hits[hits["dimension"] == dimension].set_index(["product_id", "group"])["recommended"]
        index = pd.MultiIndex.from_arrays(
            [
                np.repeat(product_index.to_numpy(dtype=object), n_groups),
                np.tile(np.asarray(groups, dtype=object), n_products),
            ]
        )
        frame = pd.DataFrame(
            {
                "_product": np.repeat(np.arange(n_products), n_groups),
                "product_id": np.repeat(product_index.to_numpy(dtype=object), n_groups),
                "dimension": dimension,
                "group": np.tile(np.asarray(groups, dtype=object), n_products),
                "customers": np.tile(size.reindex(groups).to_numpy(), n_products).astype(np.int64),
                "recommended": hit.reindex(index, fill_value=0).to_numpy().astype(np.int64),
            }
        )
        if eligible is not None:
            by_group = (
                eligible.assign(group=group_labels(eligible[dimension]))
                .groupby(["product_id", "group"], dropna=False)["eligible"]
                .sum()
            )
            frame["eligible"] = by_group.reindex(index, fill_value=0).to_numpy().astype(np.int64)
            if suitability:
                frame["suitable"] = frame["eligible"] - _withheld(eligible, dimension, index)
        frames.append(frame)
    columns = (
        RATE_COLUMNS + (ELIGIBLE_COLUMNS if eligible is not None else []) + (SUITABLE_COLUMNS if suitability else [])
    )
    if not frames:
        return pd.DataFrame(columns=columns)
    # Stable sort keeps dimensions in the given order and groups by name within a product.
    rates = pd.concat(frames, ignore_index=True).sort_values("_product", kind="stable")
    rates["rate"] = rates["recommended"] / rates["customers"]  # groups are observed, never empty
    rates["ci_low"], rates["ci_high"] = wilson_interval(rates["recommended"], rates["customers"])
    if eligible is not None:
        rates["eligible_rate"] = (rates["recommended"] / rates["eligible"].where(rates["eligible"] > 0)).astype(float)
    if suitability:
        rates["suitable_rate"] = (rates["recommended"] / rates["suitable"].where(rates["suitable"] > 0)).astype(float)
    return rates[columns].reset_index(drop=True)


def _withheld(eligible: pd.DataFrame, dimension: str, index: pd.MultiIndex) -> np.ndarray:
    """The eligible pairs the suitability rule withheld, per (product, group) of `index`."""
    by_group = (
        eligible.assign(group=group_labels(eligible[dimension]))
        .groupby(["product_id", "group"], dropna=False)["withheld"]
        .sum()
    )
    return by_group.reindex(index, fill_value=0).to_numpy().astype(np.int64)


def _extreme(judged: pd.DataFrame, highest: bool, prefix: str, extra: list[str]) -> pd.DataFrame:
    ordered = judged.sort_values([*KEYS, "rate", "group"], ascending=[True, True, not highest, True], kind="stable")
    picked = ordered.drop_duplicates(KEYS)[[*KEYS, "group", "rate", "customers", "recommended", *extra]]
    return picked.rename(columns={c: f"{prefix}_{c}" for c in ["group", "rate", "customers", "recommended", *extra]})


def fairness_gaps(
    rates: pd.DataFrame, threshold_pp: float = BREACH_THRESHOLD_PP, min_group_size: int = 1
) -> pd.DataFrame:
    """Per product and dimension: the best- and worst-served judged groups and the gap.

    Groups with fewer than min_group_size customers are listed in the rates but not
    judged: they are never the highest or lowest group. With fewer than two judged groups
    a dimension has no gap (NaN) and cannot breach.

    gap_pp is in percentage points, rounded to 4 dp so float noise (0.6 - 0.5 is not
    exactly 0.1) cannot turn a 10.0 pp gap into a breach. breach means gap_pp is strictly
    above threshold_pp. gap_ci_low_pp / gap_ci_high_pp: the 95% interval of the gap itself
    (`difference_interval` of the two groups' rates); clear_breach: even its lower end is
    above the threshold, so the breach is not an artefact of sampling noise. (The two
    groups are the extremes of the week, chosen after looking: the interval is of the
    gap between these two groups, not a correction for having picked them.) Ties pick the group whose name sorts first, so the report is
    identical week over week for identical data.

    With eligibility in the rates (see `recommendation_rates`), the gap splits exactly
    into eligibility_pp + ranking_pp. With share s = eligible / customers and r = rate
    among eligible, rate = s x r, and for the highest (H) and lowest (L) group
        gap = (s_H - s_L)(r_H + r_L)/2  +  (r_H - r_L)(s_H + s_L)/2
              \\__ eligibility_pp __/      \\___ ranking_pp ___/
    (the symmetric split of a product of two factors). A group nobody in is eligible
    takes the other group's r: no ranking difference is attributed where none is
    observable. With suitability in the rates too (`suitable`: the eligible pairs the
    suitability rule kept), r = u x q with u = suitable / eligible and q = rate among
    the suitable, and the ranking part splits the same way in two:
        ranking_pp (before) = (s_H + s_L)/2 x [(u_H - u_L)(q_H + q_L)/2 + (q_H - q_L)(u_H + u_L)/2]
                                              \\___ suitability_pp ___/   \\__ ranking_pp __/
    so gap = eligibility_pp + suitability_pp + ranking_pp; eligibility_pp is unchanged,
    and with nothing withheld (u = 1) suitability_pp is 0 and ranking_pp the two-way one,
    bit for bit. A group nobody in is eligible (suitable) takes the other's u (q).
    eligible_gap_pp is the spread of the rate among eligible customers over
    the judged groups with at least min_group_size eligible customers.
    """
    with_eligibility = "eligible" in rates.columns
    with_suitability = with_eligibility and "suitable" in rates.columns
    extra = (ELIGIBLE_COLUMNS if with_eligibility else []) + (SUITABLE_COLUMNS if with_suitability else [])
    judged = rates[rates["customers"] >= min_group_size]
    pairs = rates[KEYS].drop_duplicates().sort_values(KEYS, kind="stable")
    counts = (
        pd.DataFrame(
            {
                "groups": rates.groupby(KEYS).size(),
                "judged_groups": judged.groupby(KEYS).size(),
            }
        )
        .fillna(0)
        .astype(np.int64)
        .reset_index()
    )
    gaps = (
        pairs.merge(_extreme(judged, True, "highest", extra), on=KEYS, how="left")
        .merge(_extreme(judged, False, "lowest", extra), on=KEYS, how="left")
        .merge(counts, on=KEYS, how="left")
    )
    comparable = gaps["judged_groups"] >= 2
    gaps["gap_pp"] = ((gaps["highest_rate"] - gaps["lowest_rate"]) * 100).round(4).where(comparable)
    gaps["breach"] = (gaps["gap_pp"] > threshold_pp).fillna(False).astype(bool)
    low, high = difference_interval(
        gaps["highest_recommended"], gaps["highest_customers"], gaps["lowest_recommended"], gaps["lowest_customers"]
    )
    gaps["gap_ci_low_pp"] = pd.Series(low * 100, index=gaps.index).round(4).where(comparable)
    gaps["gap_ci_high_pp"] = pd.Series(high * 100, index=gaps.index).round(4).where(comparable)
    gaps["clear_breach"] = (gaps["gap_ci_low_pp"] > threshold_pp).fillna(False).astype(bool)
    for side in ("highest", "lowest"):
        gaps[f"{side}_customers"] = gaps[f"{side}_customers"].astype("Int64")
    columns = GAP_COLUMNS + GAP_DETAIL_COLUMNS
    if with_eligibility:
        gaps = _attribute(gaps, rates[rates["eligible"] >= min_group_size])
        columns = columns + ATTRIBUTION_COLUMNS
    if with_suitability:
        gaps = _attribute_suitability(gaps)
        columns = columns + SUITABILITY_COLUMNS
    return gaps[columns].reset_index(drop=True)


def _attribute(gaps: pd.DataFrame, judged_on_eligible: pd.DataFrame) -> pd.DataFrame:
    for side in ("highest", "lowest"):
        gaps[f"{side}_eligible_share"] = gaps[f"{side}_eligible"] / gaps[f"{side}_customers"].astype(float)
    s_h, s_l = gaps["highest_eligible_share"], gaps["lowest_eligible_share"]
    r_h = gaps["highest_eligible_rate"].fillna(gaps["lowest_eligible_rate"]).fillna(0.0)
    r_l = gaps["lowest_eligible_rate"].fillna(gaps["highest_eligible_rate"]).fillna(0.0)
    comparable = gaps["gap_pp"].notna()
    gaps["eligibility_pp"] = ((s_h - s_l) * (r_h + r_l) / 2 * 100).round(4).where(comparable)
    gaps["ranking_pp"] = ((r_h - r_l) * (s_h + s_l) / 2 * 100).round(4).where(comparable)
    spread = judged_on_eligible.groupby(KEYS)["eligible_rate"].agg(["max", "min", "size"])
    spread = ((spread["max"] - spread["min"]) * 100).round(4).where(spread["size"] >= 2).rename("eligible_gap_pp")
    return gaps.merge(spread.reset_index(), on=KEYS, how="left")


def _attribute_suitability(gaps: pd.DataFrame) -> pd.DataFrame:
    """Split ranking_pp into suitability_pp and ranking_pp (see `fairness_gaps`)."""
    for side in ("highest", "lowest"):
        gaps[f"{side}_suitable_share"] = gaps[f"{side}_suitable"] / gaps[f"{side}_eligible"].where(
            gaps[f"{side}_eligible"] > 0
        ).astype(float)
    s_h, s_l = gaps["highest_eligible_share"], gaps["lowest_eligible_share"]
    u_h = gaps["highest_suitable_share"].fillna(gaps["lowest_suitable_share"]).fillna(1.0)
    u_l = gaps["lowest_suitable_share"].fillna(gaps["highest_suitable_share"]).fillna(1.0)
    q_h = gaps["highest_suitable_rate"].fillna(gaps["lowest_suitable_rate"]).fillna(0.0)
    q_l = gaps["lowest_suitable_rate"].fillna(gaps["highest_suitable_rate"]).fillna(0.0)
    comparable = gaps["gap_pp"].notna()
    # (q_H - q_L) x 1.0 is exact: with nothing withheld ranking_pp is the two-way figure, bit for bit.
    gaps["suitability_pp"] = ((u_h - u_l) * ((q_h + q_l) / 2) * (s_h + s_l) / 2 * 100).round(4).where(comparable)
    gaps["ranking_pp"] = ((q_h - q_l) * ((u_h + u_l) / 2) * (s_h + s_l) / 2 * 100).round(4).where(comparable)
    return gaps


def report_rows(rates: pd.DataFrame, gaps: pd.DataFrame, min_group_size: int) -> pd.DataFrame:
    """One row per product, dimension and group: the group's figures, whether it was
    judged, and its product/dimension's gap and breach (the table compliance reads)."""
    detail = ["gap_pp", "breach"] + (["eligible_gap_pp"] if "eligible_gap_pp" in gaps.columns else [])
    rows = rates.merge(gaps[[*KEYS, *detail]], on=KEYS, how="left", validate="m:1")
    rows.insert(rows.columns.get_loc("ci_high") + 1, "judged", rows["customers"] >= min_group_size)
    rows["group"] = rows["group"].astype(str)
    return rows


def gap_history(history: pd.DataFrame, weeks: Sequence[str]) -> pd.DataFrame:
    """The gap of each product and dimension over `weeks` (oldest first), one column per
    week, with how many of those weeks were reported and how many breached.

    history: rows of (week_start, product_id, dimension, gap_pp, breach), one per week,
    product and dimension (the fairness report's gaps, this week's included). A week
    without a report for a product stays empty, it is not a zero.
    """
    weeks = [str(w) for w in weeks]
    h = history.assign(week=pd.to_datetime(history["week_start"]).dt.strftime("%Y-%m-%d"))
    h = h[h["week"].isin(weeks)].drop_duplicates([*KEYS, "week"], keep="last")
    if h.empty:
        return pd.DataFrame(columns=[*KEYS, *weeks, "weeks_reported", "weeks_breached"])
    wide = h.pivot(index=KEYS, columns="week", values="gap_pp").reindex(columns=weeks)
    wide["weeks_reported"] = h.groupby(KEYS)["week"].nunique()
    wide["weeks_breached"] = h[h["breach"].astype(bool)].groupby(KEYS)["week"].nunique()
    wide["weeks_breached"] = wide["weeks_breached"].fillna(0).astype(np.int64)
    wide.columns.name = None
    return wide.reset_index().sort_values(KEYS, kind="stable").reset_index(drop=True)


def attributable_to(
    eligibility_pp: float | None, ranking_pp: float | None, threshold_pp: float, suitability_pp: float | None = None
) -> str | None:
    """Which part of the gap would breach on its own: the ranking (a model review), the
    suitability rule (a MOD-040 threshold review), the eligibility matrix (a CON-006 /
    MOD-105 review), several of them, or only the parts combined. Without suitability_pp
    (or with none, 0 pp) the wording is the two-way one."""
    if eligibility_pp is None or ranking_pp is None:
        return None
    parts = {"ranking": ranking_pp, "suitability": suitability_pp, "eligibility": eligibility_pp}
    present = [name for name, value in parts.items() if value is not None and (name != "suitability" or value != 0)]
    over = [name for name in present if parts[name] > threshold_pp]
    if not over:
        return f"{_and(present)} combined"
    return _and(over)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
