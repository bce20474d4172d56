"""The fairness report's contract for the configured dimensions (NBP_FAIRNESS_DIMENSIONS)."""

from __future__ import annotations

from collections.abc import Sequence

from pandera.typing import Series

from nbp_assets.contract.assets import CustomersAsset, FairnessReportAsset, Text
from nbp_assets.model.fairness import DEFAULT_DIMENSIONS

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


def fairness_report_model(dimensions: Sequence[str]) -> type[FairnessReportAsset]:
    """FairnessReportAsset whose `dimension` column accepts exactly these dimensions."""
    dimensions = validate_dimensions(dimensions)
    if tuple(dimensions) == tuple(DEFAULT_DIMENSIONS):
        return FairnessReportAsset

    class FairnessReportConfigured(FairnessReportAsset):
        dimension: Series[object] = Text(isin=list(dimensions))

    FairnessReportConfigured.__doc__ = f"{FairnessReportAsset.__doc__}\n\nDimensions: {', '.join(dimensions)}."
    return FairnessReportConfigured
