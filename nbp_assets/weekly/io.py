"""Shared wiring of the weekly assets to the warehouse: one slice per bank week, computed,
checked and replaced inside the warehouse in one transaction."""

from __future__ import annotations

import time

import dagster as dg
import pandas as pd

from nbp_assets.contract.tables import Table
from nbp_assets.core.partitions import Week
from nbp_assets.core.sql import render
from nbp_assets.core.sqltext import timestamp
from nbp_assets.core.warehouse import WORK_SCHEMA, WarehouseResource, WarehouseSession

GROUP = "next_best_product"
# One concurrency pool for the weekly steps: with the instance's pool limit at 1, a backfill
# of many weeks runs one heavy step at a time (bounded memory, one DuckDB writer).
WEEKLY_POOL = "nbp_weekly"


def work_table(name: str) -> str:
    return f"{WORK_SCHEMA}.{name}"


def week_of(context: dg.AssetExecutionContext) -> Week:
    return Week.from_key(context.partition_key)


def week_filter(table: Table, week: Week) -> str:
    """The predicate selecting a week's slice of a declared table."""
    if table.partition_column == "evaluated_at":
        return f"evaluated_at = {timestamp(week.evaluated_at)}"
    return f"{table.partition_column} = {timestamp(week.start)}"


def replace_week_sql(table: Table, week: Week, select_sql: str | list[str]) -> list[str]:
    """The statements that replace the week's slice of `table` by the rows of `select_sql` (in
    the table's column order, minus week_start, which is added here), or of each query of a
    list (the week's shards, see party_shards): one DELETE, then one INSERT per query."""
    columns = table.columns
    values = [c for c in columns if c != "week_start"]
    parts = [select_sql] if isinstance(select_sql, str) else select_sql
    delete = render("core", "delete_where", table=table.name, where=week_filter(table, week)).text
    inserts = [
        render(
            "core",
            "insert_select",
            table=table.name,
            columns=columns,
            values=values,
            week_start=week.start if "week_start" in columns else None,
            select=part,
        ).text
        for part in parts
    ]
    return [delete, *inserts]


def replace_week(tx: WarehouseSession, table: Table, week: Week, select_sql: str | list[str], log=None) -> int:
    """Replace the week's slice of `table` by the rows of `select_sql` (replace_week_sql; `log`
    hears of each shard). Returns the slice's row count."""
    delete, *inserts = replace_week_sql(table, week, select_sql)
    tx.execute(delete)
    for i, insert in enumerate(inserts, 1):
        started = time.perf_counter()
        tx.execute(insert)
        if log is not None and len(inserts) > 1:
            log.info(f"{table.name}: shard {i} of {len(inserts)} written in {time.perf_counter() - started:.1f} s")
    return count_rows(tx, week_slice(table, week))


def count_rows(tx: WarehouseSession | WarehouseResource, relation: str) -> int:
    return int(tx.scalar(render("core", "select", columns="count(*)", relation=relation).text))


def party_shards(tx: WarehouseSession | WarehouseResource, parties: str, size: int | None) -> list[str | None]:
    """Predicates on party_id that split `parties` (one row per party) into ranges of at most
    `size` parties (read through a transaction or the warehouse itself): the week's heavy
    per-customer steps run one range at a time, so the warehouse's memory holds one range's
    joins, not the bank's. [None] (one pass) when the
    bank fits in one range or the engine scales by itself (size None: Snowflake)."""
    if size is None or count_rows(tx, parties) <= size:
        return [None]
    starts = tx.query(render("core", "shard_starts", parties=parties, size=size).text)["party_id"].tolist()
    bounds = [None, *starts, None]
    return [render("core", "between", column="party_id", lo=lo, hi=hi).text for lo, hi in zip(bounds, bounds[1:])]


def week_slice(table: Table, week: Week, columns: str = "*") -> str:
    """A week's slice of a declared table as a relation."""
    return render("core", "slice", table=table.name, where=week_filter(table, week), columns=columns).text


def with_week(df: pd.DataFrame, week: Week) -> pd.DataFrame:
    df.insert(0, "week_start", pd.Timestamp(week.start))
    return df


def write_slice(wh: WarehouseResource, name: str, df: pd.DataFrame, week: Week) -> int:
    """Replace a week's slice of a small work table from a frame (the fairness report)."""
    return wh.replace_slice(work_table(name), df, where=f"week_start = {timestamp(week.start)}")


def table_metadata(table: Table) -> dict:
    """Definition metadata: where the asset lives and its columns, from the one declaration."""
    return {
        "dagster/table_name": table.name,
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(name, sql_type, constraints=dg.TableColumnConstraints(nullable=table.nullable(name)))
                for name, sql_type in table.column_types().items()
            ]
        ),
        "key": ", ".join(table.key),
    }


def common_metadata(week: Week, rows: int, table: str, started: float) -> dict:
    return {
        "week": week.key,
        "evaluation_date": week.evaluation_date.isoformat(),
        "table": table,
        "dagster/row_count": rows,
        "seconds": round(time.perf_counter() - started, 2),
    }


def preview(df) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.to_markdown(index=False))
