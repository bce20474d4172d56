"""The week's fairness report rows in the warehouse (nbp_work.fairness_report): the contract
gate before they are written, the write itself (widening a table from before the newer
columns), and the reads of the stored rows (a week's rows, the last weeks' gaps, the later
weeks). The stored rows are the week's one source of breaches (breaches.py).
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from nbp_assets.core.partitions import Week
from nbp_assets.core.sql import render
from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.fairness import maths
from nbp_assets.fairness.config import FairnessConfig
from nbp_assets.fairness.contract import REPORT_TABLE
from nbp_assets.weekly import checks
from nbp_assets.weekly.io import write_slice

ASSET = "fairness_report"


def gate(contract, df: pd.DataFrame):
    """The report's contract check: yields its result; a violation stops the step before
    anything is written."""
    yield from checks.gate(ASSET, [checks.contract_result(contract, df, ASSET)])


def _widen(warehouse: WarehouseResource, df: pd.DataFrame) -> None:
    """A report table from before some of `df`'s columns: add them, earlier weeks stay
    (empty there)."""
    present = warehouse.column_names(REPORT_TABLE)
    missing = [c for c in df.columns if c.lower() not in present]
    if not missing:
        return
    old = warehouse.query(render("core", "select", columns="*", relation=REPORT_TABLE).text)
    nullable = {"bool": "boolean", "int64": "Int64", "object": "string"}  # typed even when all empty
    for column in missing:
        old[column] = pd.Series(None, index=old.index, dtype=nullable.get(str(df[column].dtype), df[column].dtype))
    warehouse.replace_table(REPORT_TABLE, old)


def write_report(warehouse: WarehouseResource, df: pd.DataFrame, week: Week) -> None:
    """Replace the week's report rows by `df`."""
    if warehouse.table_exists(REPORT_TABLE):
        _widen(warehouse, df)
    write_slice(warehouse, ASSET, df, week)


def week_rows(warehouse: WarehouseResource, week: Week, columns: str = "*") -> pd.DataFrame:
    """The week's stored report rows (the table must exist)."""
    return warehouse.query(
        render("fairness", "week_rows", report=REPORT_TABLE, columns=columns, week_start=week.start).text
    )


def later_weeks(warehouse: WarehouseResource, week: Week, config: FairnessConfig) -> list[Week]:
    """The stored weeks after `week` whose trend window reaches it, in order."""
    if not warehouse.table_exists(REPORT_TABLE):
        return []
    before = week.start + timedelta(weeks=config.history_weeks)
    later = warehouse.query(
        render("fairness", "later_weeks", report=REPORT_TABLE, after=week.start, before=before).text
    )
    return [Week(start) for start in pd.to_datetime(later["week_start"]).dt.date]


def gap_history(
    warehouse: WarehouseResource, week: Week, gaps: pd.DataFrame, config: FairnessConfig
) -> tuple[list[str], pd.DataFrame]:
    """The trend: the week's gaps beside those stored for the weeks before it within the
    window; the window's weeks and the gap of every product and dimension judged."""
    weeks = [(week.start - timedelta(weeks=k)).isoformat() for k in reversed(range(config.history_weeks))]
    current = gaps[["product_id", "dimension", "gap_pp", "breach"]].assign(week_start=pd.Timestamp(week.start))
    if warehouse.table_exists(REPORT_TABLE):
        first = week.start - timedelta(weeks=config.history_weeks - 1)
        earlier = warehouse.query(
            render("fairness", "earlier_gaps", report=REPORT_TABLE, first=first, week_start=week.start).text
        )
        if len(earlier):
            current = pd.concat([earlier, current], ignore_index=True)
    history = maths.gap_history(current, weeks)
    return weeks, history[history["dimension"].isin(config.judged)].reset_index(drop=True)
