"""The week's fairness, computed: counts read from the warehouse (fairness/sql/*.sql), the
rule applied in pandas (maths.py), the report rows as the contract declares them.

Only counts leave the warehouse: one row per product and combination of group values, a
few thousand rows, never the customers or their top 3. The simulation (simulation/) calls
`week_gaps` with a challenger's top 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from nbp_assets.contract.tables import CUSTOMERS, HISTORY, PRODUCTS
from nbp_assets.core.partitions import Week
from nbp_assets.core.sql import render
from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.fairness import contract, maths
from nbp_assets.fairness.config import FairnessConfig
from nbp_assets.weekly.eligibility import ACTIVE
from nbp_assets.weekly.io import week_slice, with_week, work_table

# The withheld rule of a customer whose MOD-040 health was unknown (treated as not suitable).
UNKNOWN_HEALTH_RULE = "suitability_when_unknown"


def eligible_counts(
    warehouse: WarehouseResource, week: Week, dimensions: tuple[str, ...], intersections: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Active customers eligible for each product, per product and combination of group
    values (dimension names are validated customer columns), with each intersection's group;
    and `withheld`, those of them the suitability rule withheld (when the week's
    nbp_work.withheld exists: a warehouse from before it has no such column)."""
    withheld = work_table("withheld")
    counts = warehouse.query(
        render(
            "fairness",
            "eligible_counts",
            eligibility=work_table("eligibility"),
            customers=work_table("customers"),
            withheld=withheld if warehouse.table_exists(withheld) else None,
            week_start=week.start,
            active=ACTIVE,
            dimensions=grouped_by(dimensions, intersections),
        ).text
    )
    return maths.with_intersections(counts, intersections)


def unknown_health(
    warehouse: WarehouseResource, week: Week, dimensions: tuple[str, ...], intersections: tuple[str, ...] = ()
) -> pd.DataFrame | None:
    """The active customers withheld a product because their MOD-040 health was unknown
    (suitability_when_unknown), per judged dimension and group (dimension, group,
    customers; groups with none are left out); None without nbp_work.withheld."""
    withheld = work_table("withheld")
    if not warehouse.table_exists(withheld):
        return None
    combos = warehouse.query(
        render(
            "fairness",
            "unknown_health_counts",
            withheld=withheld,
            customers=work_table("customers"),
            week_start=week.start,
            active=ACTIVE,
            rule=UNKNOWN_HEALTH_RULE,
            dimensions=grouped_by(dimensions, intersections),
        ).text
    )
    combos = maths.with_intersections(combos.rename(columns={"unknown_health": "customers"}), intersections)
    if combos.empty:
        return pd.DataFrame(columns=["dimension", "group", "customers"])
    return _per_dimension(combos, (*dimensions, *intersections), [], "customers")


def grouped_by(dimensions: tuple[str, ...], intersections: tuple[str, ...]) -> tuple[str, ...]:
    """The customer columns the counts are grouped by: the dimensions and each intersection's two."""
    return tuple(dict.fromkeys(c for d in (*dimensions, *intersections) for c in contract.intersection_parts(d)))


def _per_dimension(combos: pd.DataFrame, dimensions: tuple[str, ...], keys: list[str], count: str) -> pd.DataFrame:
    """Counts per combination of group values, summed per dimension and group."""
    return pd.concat(
        [
            combos.assign(dimension=d, group=maths.group_labels(combos[d]))
            .groupby([*keys, "dimension", "group"], as_index=False)[count]
            .sum()
            for d in dimensions
        ],
        ignore_index=True,
    )


def rate_counts(
    warehouse: WarehouseResource,
    week: Week,
    dimensions: tuple[str, ...],
    ranked: str | None = None,
    intersections: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Active customers per group and, per product, those with it in their top 3: counted in
    the warehouse per combination of group values (one GROUP BY each, a few thousand rows),
    then summed per dimension and per intersection (pair of dimensions) here, so neither
    the customers nor the top 3 leave it.
    `ranked`: another week's top 3 to count (a challenger's, simulation/); the history's by default."""
    columns = grouped_by(dimensions, intersections)
    customers = dict(customers=week_slice(CUSTOMERS, week), active=ACTIVE, dimensions=columns)
    combos = warehouse.query(render("fairness", "active_counts", **customers).text)
    ranked = ranked or week_slice(HISTORY, week, "party_id, product_id")
    hit_combos = warehouse.query(render("fairness", "recommended_counts", ranked=ranked, **customers).text)
    judged = (*dimensions, *intersections)
    sizes = _per_dimension(maths.with_intersections(combos, intersections), judged, [], "customers")
    hits = _per_dimension(maths.with_intersections(hit_combos, intersections), judged, ["product_id"], "recommended")
    return sizes, hits


def product_register(warehouse: WarehouseResource, week: Week) -> pd.DataFrame:
    """The week's products: product_id, product_name."""
    relation = week_slice(PRODUCTS, week)
    return warehouse.query(render("core", "select", columns="product_id, product_name", relation=relation).text)


@dataclass(frozen=True)
class WeekFairness:
    """A week's recommendation rates per group, the gaps they make, and the product names;
    unknown_health: the customers withheld for unknown MOD-040 health per dimension and
    group (`unknown_health`), None when not counted."""

    rates: pd.DataFrame
    gaps: pd.DataFrame
    names: dict
    unknown_health: pd.DataFrame | None = None

    def unknown_health_total(self) -> int | None:
        """The customers withheld for unknown health: each in one group of any dimension."""
        u = self.unknown_health
        if u is None:
            return None
        return int(u.groupby("dimension")["customers"].sum().max()) if len(u) else 0


def week_fairness(
    warehouse: WarehouseResource, week: Week, config: FairnessConfig, ranked: str | None = None
) -> WeekFairness:
    """The rates and gaps of the week's top 3 (or of `ranked`, a challenger's), judged by `config`."""
    sizes, hits = rate_counts(warehouse, week, config.dimensions, ranked, config.intersections)
    register = product_register(warehouse, week)
    products, names = register["product_id"], dict(zip(register["product_id"], register["product_name"]))
    eligible = eligible_counts(warehouse, week, config.dimensions, config.intersections)
    rates = maths.rates_from_counts(sizes, hits, sorted(products), config.judged, eligible)
    gaps = maths.fairness_gaps(rates, config.threshold_pp, config.min_group_size)
    unknown = unknown_health(warehouse, week, config.dimensions, config.intersections)
    return WeekFairness(rates, gaps, names, unknown)


def week_gaps(
    warehouse: WarehouseResource, week: Week, config: FairnessConfig, ranked: str | None = None
) -> pd.DataFrame:
    """The gaps of the week's top 3 (or of `ranked`, a challenger's)."""
    return week_fairness(warehouse, week, config, ranked).gaps


def report_frame(computed: WeekFairness, week: Week, model_version: str, config: FairnessConfig) -> pd.DataFrame:
    """The week's report rows (one per product, dimension and group), as the table stores them."""
    df = with_week(maths.report_rows(computed.rates, computed.gaps, config.min_group_size), week)
    df["model_version"] = model_version
    return df
