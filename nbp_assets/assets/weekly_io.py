"""Shared wiring of the weekly assets to the warehouse: one slice per bank week."""

import time

import dagster as dg
import pandas as pd

from nbp_assets.partitions import Week
from nbp_assets.storage.warehouse import HISTORY_TABLE, WORK_SCHEMA, WarehouseResource, sql_date

GROUP = "next_best_product"
# One concurrency pool for the weekly steps: with the instance's pool limit at 1, a backfill
# of many weeks runs one heavy step at a time (bounded memory, one DuckDB writer).
WEEKLY_POOL = "nbp_weekly"
PARTITION_EXPR = "week_start"


def work_table(name: str) -> str:
    return f"{WORK_SCHEMA}.{name}"


def week_of(context: dg.AssetExecutionContext) -> Week:
    return Week.from_key(context.partition_key)


def with_week(df: pd.DataFrame, week: Week) -> pd.DataFrame:
    df.insert(0, "week_start", pd.Timestamp(week.start))
    return df


def read_slice(wh: WarehouseResource, name: str, week: Week, columns: str = "*") -> pd.DataFrame:
    """One week of a work table; name only the columns a step needs (millions of rows)."""
    return wh.query(f"SELECT {columns} FROM {work_table(name)} WHERE week_start = {sql_date(week.start)}")


def read_history(wh: WarehouseResource, week: Week, columns: str = "*", order_by: str | None = None) -> pd.DataFrame:
    """The week's rows of product_intelligence.next_best_product (keyed by evaluated_at)."""
    order = f" ORDER BY {order_by}" if order_by else ""
    return wh.query(f"SELECT {columns} FROM {HISTORY_TABLE} WHERE evaluated_at = {sql_date(week.evaluated_at)}{order}")


def preview(df: pd.DataFrame, n: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.head(n).to_markdown(index=False))


def write_slice(wh: WarehouseResource, name: str, df: pd.DataFrame, week: Week) -> int:
    # Replacing the week's slice makes re-runs and backfills idempotent.
    return wh.replace_slice(work_table(name), df, where=f"week_start = {sql_date(week.start)}")


def common_metadata(week: Week, df: pd.DataFrame, table: str, started: float) -> dict:
    return {
        "week": week.key,
        "evaluation_date": week.evaluation_date.isoformat(),
        "table": table,
        "dagster/row_count": len(df),
        "seconds": round(time.perf_counter() - started, 2),
    }
