"""What the fairness report promises its readers, and which customer columns it may be cut by
(NBP_FAIRNESS_DIMENSIONS) and crossed by (NBP_FAIRNESS_INTERSECTIONS: pairs such as
jurisdiction*age_band, judged as one more dimension whose groups are `<a value>*<b value>`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import pandera.pandas as pa
from pandera.typing import Series

from nbp_assets.contract.assets import CustomersAsset, Text, Weekly
from nbp_assets.core.settings import ConfigurationError

# Beside the weekly tables of contract/tables.py; written whole per week, so no Table declaration.
REPORT_TABLE = "nbp_work.fairness_report"
# Judged unless NBP_FAIRNESS_DIMENSIONS names others.
DEFAULT_DIMENSIONS = ("jurisdiction", "age_band", "segment")
# Joins the two dimensions of an intersection's name (jurisdiction*age_band) and the two
# values of its groups (IE*25-34).
INTERSECTION = "*"


class FairnessReportAsset(Weekly):
    """nbp_work.fairness_report: per product, dimension and group, the recommendation rate
    with its 95% interval, the rate among eligible customers, whether the group was large
    enough to be judged, and the product/dimension's gap and breach. Dimensions other
    than the defaults are checked by `fairness_report_model`."""

    product_id: Series[object] = Text()
    dimension: Series[object] = Text(isin=list(DEFAULT_DIMENSIONS))
    group: Series[object] = Text()
    customers: Series[int] = pa.Field(ge=1)
    recommended: Series[int] = pa.Field(ge=0)
    rate: Series[float] = pa.Field(ge=0.0, le=1.0)
    ci_low: Series[float] = pa.Field(ge=0.0, le=1.0)
    ci_high: Series[float] = pa.Field(ge=0.0, le=1.0)
    judged: Series[bool]
    eligible: Series[int] = pa.Field(ge=0)
    # NaN when nobody in the group is eligible; above 1 only if the CON-006 gate leaked.
    eligible_rate: Series[float] = pa.Field(ge=0.0, le=1.0, nullable=True)
    # The eligible pairs the suitability rule kept (eligible minus nbp_work.withheld) and
    # the rate among them: absent for a week without nbp_work.withheld.
    suitable: Optional[Series[int]] = pa.Field(ge=0)
    suitable_rate: Optional[Series[float]] = pa.Field(ge=0.0, le=1.0, nullable=True)
    # NaN when fewer than two groups of the dimension are large enough to judge.
    gap_pp: Series[float] = pa.Field(ge=0.0, le=100.0, nullable=True)
    breach: Series[bool]
    eligible_gap_pp: Series[float] = pa.Field(ge=0.0, le=100.0, nullable=True)
    model_version: Series[object] = Text(str_length={"min_value": 1})


# Text columns of the customers asset a report can be cut by. party_id would make one
# group per customer; numeric columns (income, fico) must be banded upstream first.
NOT_A_DIMENSION = {"party_id", "week_start"}


def dimension_columns() -> list[str]:
    columns = CustomersAsset.to_schema().columns
    return [name for name, col in columns.items() if str(col.dtype) == "object" and name not in NOT_A_DIMENSION]


def validate_dimensions(dimensions: Sequence[str]) -> tuple[str, ...]:
    """The dimensions as given, or a ValueError that names the bad one and the choices."""
    allowed = dimension_columns()
    numeric = set(CustomersAsset.to_schema().columns) - set(allowed) - NOT_A_DIMENSION
    if not dimensions:
        raise ValueError(f"NBP_FAIRNESS_DIMENSIONS is empty: name at least one of {', '.join(allowed)}")
    for name in dimensions:
        if name in numeric:
            raise ValueError(
                f"NBP_FAIRNESS_DIMENSIONS: {name!r} is numeric; band it into a text column of "
                f"the customer master first. Usable columns: {', '.join(allowed)}"
            )
        if name not in allowed:
            raise ValueError(
                f"NBP_FAIRNESS_DIMENSIONS: {name!r} is not a column of the customers asset "
                f"(nbp_work.customers). Usable columns: {', '.join(allowed)}"
            )
    if len(set(dimensions)) != len(dimensions):
        raise ValueError(f"NBP_FAIRNESS_DIMENSIONS names a dimension twice: {', '.join(dimensions)}")
    return tuple(dimensions)


# Why a usable dimension may be left out of the judgement, for the report to say so.
LEFT_OUT_BECAUSE = {
    "gender": "off by default: gender is judged only when NBP_FAIRNESS_DIMENSIONS names it",
    "status": "every ranked customer is ACTIVE: one group, nothing to compare",
}


def left_out_dimensions(dimensions: Sequence[str]) -> dict[str, str]:
    """The usable dimensions not judged this week, each with why."""
    return {
        name: LEFT_OUT_BECAUSE.get(name, "not named in NBP_FAIRNESS_DIMENSIONS")
        for name in dimension_columns()
        if name not in dimensions
    }


def intersection_parts(dimension: str) -> tuple[str, ...]:
    """The customer columns a report dimension is cut by: two for an intersection, else one."""
    return tuple(dimension.split(INTERSECTION))


def _intersection(item: str, allowed: list[str], numeric: set[str]) -> tuple[str, str]:
    """One NBP_FAIRNESS_INTERSECTIONS item as its two dimensions, or a one-line error."""
    where = f"NBP_FAIRNESS_INTERSECTIONS item {item!r}"
    choices = f"allowed dimensions: {', '.join(allowed)}"
    parts = tuple(p.strip() for p in item.split(INTERSECTION))
    if len(parts) != 2 or not all(parts):
        raise ConfigurationError(f"{where} is not a pair of two dimensions a{INTERSECTION}b; {choices}")
    for name in parts:
        if name in numeric:
            raise ConfigurationError(f"{where}: {name!r} is numeric (band it upstream first); {choices}")
        if name not in allowed:
            raise ConfigurationError(f"{where}: {name!r} is not a column of the customers asset; {choices}")
    if parts[0] == parts[1]:
        raise ConfigurationError(f"{where} pairs {parts[0]!r} with itself; {choices}")
    return parts[0], parts[1]


def validate_intersections(items: Sequence[str]) -> tuple[str, ...]:
    """The configured pairs as report dimension names (`a*b`), or a ConfigurationError (one
    line naming the variable, the bad item and the allowed dimensions)."""
    allowed = dimension_columns()
    numeric = set(CustomersAsset.to_schema().columns) - set(allowed) - NOT_A_DIMENSION
    names: dict[frozenset, str] = {}
    for item in items:
        a, b = _intersection(item, allowed, numeric)
        name = f"{a}{INTERSECTION}{b}"
        if frozenset((a, b)) in names:
            raise ConfigurationError(
                f"NBP_FAIRNESS_INTERSECTIONS names the pair {names[frozenset((a, b))]} twice ({item!r})"
            )
        names[frozenset((a, b))] = name
    return tuple(names.values())


def group_text(dimension: str, group: str) -> str:
    """A group as a reader reads it: `IE*25-34` of jurisdiction*age_band is
    `jurisdiction=IE & age_band=25-34`; a group of one dimension is its value."""
    parts = intersection_parts(dimension)
    values = str(group).split(INTERSECTION, len(parts) - 1)
    if len(parts) == 1 or len(values) != len(parts):
        return str(group)
    return " & ".join(f"{d}={v}" for d, v in zip(parts, values))


def fairness_report_model(dimensions: Sequence[str], intersections: Sequence[str] = ()) -> type[FairnessReportAsset]:
    """FairnessReportAsset whose `dimension` column accepts exactly these dimensions and
    intersections (`a*b`)."""
    dimensions = validate_dimensions(dimensions)
    intersections = validate_intersections(intersections)
    if tuple(dimensions) == tuple(DEFAULT_DIMENSIONS) and not intersections:
        return FairnessReportAsset
    judged = [*dimensions, *intersections]

    class FairnessReportConfigured(FairnessReportAsset):
        dimension: Series[object] = Text(isin=judged)

    FairnessReportConfigured.__doc__ = f"{FairnessReportAsset.__doc__}\n\nDimensions: {', '.join(judged)}."
    return FairnessReportConfigured
