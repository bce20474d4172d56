"""The one way a source table is read: check the rows the reader depends on against the
table's contract in the warehouse (only counts and a few examples come back), then select
the contract's columns of the rows it uses. Weekly inputs are read as SQL relations the
model's queries build on; the offer step's small inputs as frames."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from nbp_assets.contract.sql_checks import check_in_warehouse, coerce_types
from nbp_assets.core.warehouse import WarehouseResource


def checked_relation(
    wh: WarehouseResource,
    model: type[pa.DataFrameModel],
    table: str,
    depends_on: str,
    where: str,
    check_types: bool = True,
    party_shards: list[str | None] | None = None,
) -> str:
    """The rows of `table` matching `where`, as a parenthesised subquery, once every row
    matching `depends_on` has passed `model` (column types too, unless check_types is False;
    party_shards: see check_in_warehouse)."""
    present = wh.column_types(table) if check_types else wh.column_names(table)
    check_in_warehouse(wh.query, model, table, depends_on, present, source=wh.describe(), party_shards=party_shards)
    return f"(SELECT {_columns(model)} FROM {table} WHERE {where})"


def read(
    wh: WarehouseResource,
    model: type[pa.DataFrameModel],
    table: str,
    where: str = "TRUE",
    order_by: str | None = None,
    check_types: bool = False,
) -> pd.DataFrame:
    """Rows of a source table matching `where`, checked against the contract in the warehouse
    (column types too if check_types: text in a number column is refused, not converted), as
    a frame with the contract's types."""
    checked_relation(wh, model, table, where, where, check_types=check_types)
    order = f" ORDER BY {order_by}" if order_by else ""
    return coerce_types(model, wh.query(f"SELECT {_columns(model)} FROM {table} WHERE {where}{order}"))


def _columns(model: type[pa.DataFrameModel]) -> str:
    return ", ".join(model.to_schema().columns)
