"""The week's fairness breaches, from one place: the week's stored fairness report.

The check, the alerts, the HTML report and the run summary all read them here, so each
tells the same breaches for the same week, whatever order the weeks ran in.
"""

from __future__ import annotations

import pandas as pd

from nbp_assets.core.partitions import Week
from nbp_assets.core.sql import render
from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.fairness.contract import REPORT_TABLE
from nbp_assets.fairness.maths import KEYS

COLUMNS = [*KEYS, "gap_pp"]


def breaches_of(report_rows: pd.DataFrame) -> pd.DataFrame:
    """The products and dimensions whose gap is over the threshold in these report rows
    (one row per product, dimension and group): one row each, with the gap."""
    breaching = report_rows[report_rows["breach"].astype(bool)]
    return breaching[COLUMNS].drop_duplicates(KEYS).sort_values(KEYS, kind="stable").reset_index(drop=True)


def week_breaches(warehouse: WarehouseResource, week: Week) -> pd.DataFrame:
    """The week's breaches (product_id, dimension, gap_pp) as its fairness report stores
    them; none when the week has no report yet."""
    if not warehouse.table_exists(REPORT_TABLE):
        return pd.DataFrame(columns=COLUMNS)
    columns = "product_id, dimension, gap_pp, breach"
    rows = warehouse.query(
        render("fairness", "week_rows", report=REPORT_TABLE, columns=columns, week_start=week.start).text
    )
    return breaches_of(rows)
