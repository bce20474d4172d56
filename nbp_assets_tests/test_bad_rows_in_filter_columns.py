"""Rows the week's filters would drop still have to meet the contract (written straight
into the warehouse by an upstream system, they used to pass silently and change what was
published). Each fails the step with the table, the column and example rows, and nothing
of the week is written."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from nbp_assets.core.partitions import Week
from nbp_assets.core.warehouse import HISTORY_TABLE, SOURCE_SCHEMA, DuckDBWarehouse
from nbp_assets.sources.synthetic import generate
from nbp_assets.weekly.assets import build_engine_assets
from nbp_assets.weekly.weights import load_weights

WEEK = Week.from_key("2026-11-09")
E = pd.Timestamp(WEEK.evaluation_date)


def _lower_status(t):
    snap = t["eligibility"]["as_of_date"] == t["eligibility"]["as_of_date"].max()
    t["eligibility"].loc[snap & (t["eligibility"]["eligibility_status"] == "ELIGIBLE"), "eligibility_status"] = (
        "eligible"
    )


def _lower_outcome(t):
    t["offer_history"].loc[t["offer_history"]["outcome"] == "REJECTED", "outcome"] = "rejected"


def _lower_customer_status(t):
    t["customers"].loc[t["customers"].index[:3], "status"] = "active"


def _null_opened_on(t):
    t["holdings"].loc[t["holdings"].index[:2], "opened_on"] = pd.NaT


def _null_valid_from(t):
    t["customers"].loc[t["customers"].index[:2], "valid_from"] = pd.NaT


def _valid_to_before_valid_from(t):
    t["customers"].loc[t["customers"].index[:2], "valid_to"] = t["customers"]["valid_from"].iloc[0] - pd.Timedelta(
        days=3
    )


def _overlapping_products(t):
    extra = t["product_register"].iloc[[0]].copy()
    extra["valid_from"] = E - pd.Timedelta(days=20)
    t["product_register"] = pd.concat([t["product_register"], extra], ignore_index=True)


@pytest.mark.parametrize(
    "break_it, table, column",
    [
        (_lower_status, "nbp_source.eligibility", "eligibility_status"),
        (_lower_outcome, "nbp_source.offer_history", "outcome"),
        (_lower_customer_status, "nbp_source.customers", "status"),
        (_null_opened_on, "nbp_source.holdings", "opened_on"),
        (_null_valid_from, "nbp_source.customers", "valid_from"),
        (_valid_to_before_valid_from, "nbp_source.customers", "valid_to"),
        (_overlapping_products, "nbp_source.product_register", "product_id, valid_from, valid_to"),
    ],
)
def test_bad_row_in_a_filter_column_fails_the_week(tmp_path, break_it, table, column):
    tables = {k: v.copy() for k, v in generate(200, 9, end_week=WEEK.start, history_weeks=1).items()}
    for name in ("customers", "holdings", "product_register"):
        tables[name]["valid_to" if "valid_to" in tables[name] else "closed_on"] = tables[name][
            "valid_to" if "valid_to" in tables[name] else "closed_on"
        ].astype("datetime64[ns]")
    break_it(tables)
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"))
    for name, df in tables.items():
        warehouse.replace_table(f"{SOURCE_SCHEMA}.{name}", df)
    # every one of these fails by the signals step at the latest: later steps would only be skipped
    assets = [
        a for a in build_engine_assets(load_weights()) if a.key.path[-1] in ("customers", "eligibility", "signals")
    ]
    result = dg.materialize(assets, partition_key=WEEK.key, resources={"warehouse": warehouse}, raise_on_error=False)
    assert not result.success
    failures = [e.step_failure_data for e in result.all_events if e.is_step_failure]
    message = "\n".join(f.user_failure_data.description if f.user_failure_data else f.error.message for f in failures)
    assert table in message and column in message, message
    assert "example" in message.lower() or "|" in message or "{" in message, message  # example rows shown
    assert (
        not warehouse.table_exists(HISTORY_TABLE)
        or warehouse.query(f"SELECT count(*) AS n FROM {HISTORY_TABLE}")["n"][0] == 0
    )


def test_an_empty_week_fails_and_keeps_the_weeks_history(tmp_path):
    tables = generate(200, 9, end_week=WEEK.start, history_weeks=1)
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"))
    for name, df in tables.items():
        warehouse.replace_table(f"{SOURCE_SCHEMA}.{name}", df)
    assets = [a for a in build_engine_assets(load_weights()) if a.key.path[-1] != "nbp_current"]
    assert dg.materialize(assets, partition_key=WEEK.key, resources={"warehouse": warehouse}).success
    before = warehouse.query(f"SELECT * FROM {HISTORY_TABLE} ORDER BY party_id, rank")
    assert len(before) > 0

    for table, column, value in (
        ("eligibility", "eligibility_status", "INELIGIBLE"),  # no eligible pair
        ("customers", "status", "DORMANT"),
    ):  # no active customer
        emptied = tables[table].assign(**{column: value})
        warehouse.replace_table(f"{SOURCE_SCHEMA}.{table}", emptied)
        result = dg.materialize(
            assets, partition_key=WEEK.key, resources={"warehouse": warehouse}, raise_on_error=False
        )
        assert not result.success
        failures = [e.step_failure_data for e in result.all_events if e.is_step_failure]
        described = [f.user_failure_data.description for f in failures if f.user_failure_data]
        assert described[0].startswith("nbp_ranked") and "week_not_empty" in described[0], described
        pd.testing.assert_frame_equal(warehouse.query(f"SELECT * FROM {HISTORY_TABLE} ORDER BY party_id, rank"), before)
        warehouse.replace_table(f"{SOURCE_SCHEMA}.{table}", tables[table])  # one empty cause at a time
