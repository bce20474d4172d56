"""Read the upstream inputs as they stood at a week's evaluation date (point in time).

Every reader enforces the data contract on the rows it reads, inside the warehouse (see
contract/sql_checks.py), because in production the source tables are written by other
systems (MOD-105, MOD-040, ...) and not by our loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from nbp_assets.contract.inputs import SOURCE_TABLES
from nbp_assets.contract.sql_checks import check_in_warehouse, coerce_types
from nbp_assets.model.signals import COOLING_OFF_DAYS
from nbp_assets.partitions import Week
from nbp_assets.storage.warehouse import SOURCE_SCHEMA, WarehouseResource, sql_date


class MissingInput(RuntimeError):
    """A required upstream table or snapshot is not there for the week being evaluated."""


@dataclass(frozen=True)
class Snapshot:
    frame: pd.DataFrame
    as_of_date: pd.Timestamp


def _table(name: str) -> str:
    return f"{SOURCE_SCHEMA}.{name}"


def _require(wh: WarehouseResource, name: str) -> None:
    if not wh.table_exists(_table(name)):
        raise MissingInput(
            f"source table {_table(name)} does not exist in {wh.describe()}: generate data "
            "(python -m nbp_assets generate) or load your files (python -m nbp_assets load DIR)"
        )


def _read(wh: WarehouseResource, name: str, where: str, order_by: str | None = None) -> pd.DataFrame:
    """Rows of a source table matching `where`, checked against the contract in the warehouse."""
    model, _ = SOURCE_TABLES[name]
    table = _table(name)
    check_in_warehouse(wh.query, model, table, where, wh.column_names(table), source=wh.describe())
    cols = ", ".join(model.to_schema().columns)
    order = f" ORDER BY {order_by}" if order_by else ""
    return coerce_types(model, wh.query(f"SELECT {cols} FROM {table} WHERE {where}{order}"))


def _versioned(wh: WarehouseResource, name: str, week: Week) -> pd.DataFrame:
    """Rows of a versioned master valid on the last day before the evaluation date."""
    _require(wh, name)
    ev = sql_date(week.evaluation_date)
    return _read(wh, name, f"valid_from < {ev} AND (valid_to IS NULL OR valid_to >= {ev})")


def customers(wh: WarehouseResource, week: Week) -> pd.DataFrame:
    df = _versioned(wh, "customers", week)
    dupes = df[df["party_id"].duplicated(keep=False)]
    if len(dupes):
        raise MissingInput(
            f"{_table('customers')}: overlapping versions for {dupes['party_id'].nunique()} party_id(s) "
            f"on {week.evaluation_date - timedelta(days=1)}; examples: {dupes.head(5).to_dict('records')}"
        )
    return df


def products(wh: WarehouseResource, week: Week) -> pd.DataFrame:
    return _versioned(wh, "product_register", week)


def snapshot(wh: WarehouseResource, name: str, week: Week, where: str = "TRUE") -> Snapshot | None:
    """The latest snapshot dated before the evaluation date; None if there is none."""
    _, required = SOURCE_TABLES[name]
    if not wh.table_exists(_table(name)):
        if required:
            _require(wh, name)
        return None
    ev = sql_date(week.evaluation_date)
    latest = wh.query(f"SELECT max(as_of_date) AS d FROM {_table(name)} WHERE as_of_date < {ev}")["d"].iloc[0]
    if pd.isna(latest):
        if required:
            raise MissingInput(f"{_table(name)} has no snapshot dated before {week.evaluation_date}")
        return None
    latest = pd.Timestamp(latest)
    df = _read(wh, name, f"as_of_date = {sql_date(latest.date())} AND ({where})")
    return Snapshot(df, latest)


def eligibility_status_counts(wh: WarehouseResource, as_of: pd.Timestamp) -> dict[str, int]:
    df = wh.query(
        f"SELECT eligibility_status, count(*) AS n FROM {_table('eligibility')} "
        f"WHERE as_of_date = {sql_date(as_of.date())} GROUP BY 1 ORDER BY 1"
    )
    return {str(k): int(v) for k, v in zip(df["eligibility_status"], df["n"])}


def holdings(wh: WarehouseResource, week: Week) -> pd.DataFrame:
    """Products held (open) at the evaluation date."""
    _require(wh, "holdings")
    ev = sql_date(week.evaluation_date)
    return _read(wh, "holdings", f"opened_on < {ev} AND (closed_on IS NULL OR closed_on >= {ev})")


def rejections(wh: WarehouseResource, week: Week) -> pd.DataFrame:
    """Offers rejected in the cooling-off window before the evaluation date."""
    _require(wh, "offer_history")
    ev = sql_date(week.evaluation_date)
    since = sql_date(week.evaluation_date - timedelta(days=COOLING_OFF_DAYS + 1))
    df = _read(wh, "offer_history", f"outcome = 'REJECTED' AND outcome_at < {ev} AND outcome_at >= {since}")
    return df[["party_id", "product_id", "outcome_at"]]


def activity(wh: WarehouseResource, week: Week) -> pd.DataFrame:
    """Activity events that happened during the week."""
    _require(wh, "activity")
    return _read(
        wh, "activity",
        f"event_time >= {sql_date(week.start)} AND event_time < {sql_date(week.evaluation_date)}",
        order_by="activity_id",
    )
