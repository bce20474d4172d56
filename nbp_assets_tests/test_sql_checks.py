"""The data contract enforced inside the warehouse: same verdicts as pandera, names and rows."""

from __future__ import annotations

import pandas as pd
import pytest

from nbp_assets.contract.inputs import SOURCE_TABLES, ChurnHealthInput, CustomersInput
from nbp_assets.contract.sql_checks import check_in_warehouse, coerce_types, predicates
from nbp_assets.contract.validation import ContractViolation, validate
from nbp_assets.core.warehouse import DuckDBWarehouse


@pytest.fixture
def wh(tmp_path):
    return DuckDBWarehouse(database=str(tmp_path / "w.duckdb"))


def customers(**changes) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "party_id": ["P1", "P2", "P3"],
            "jurisdiction": ["GB", "IE", "GB"],
            "segment": ["MASS", "AFFLUENT", "PRIVATE"],
            "age_band": ["25-34", "45-54", "65+"],
            "gender": ["F", None, "M"],
            "status": ["ACTIVE", "ACTIVE", "DORMANT"],
            "income": [30000, None, 250000],
            "fico": [700, 650, None],
            "valid_from": pd.to_datetime(["2025-01-01"] * 3),
            "valid_to": pd.NaT,
        }
    )
    for col, (row, value) in changes.items():
        df[col] = df[col].astype(object)
        df.at[row, col] = value
    return df


def run(wh, df, model=CustomersInput, where="TRUE"):
    wh.replace_table("src.t", df)
    check_in_warehouse(wh.query, model, "src.t", where, wh.column_names("src.t"), source="test")


@pytest.mark.parametrize("name", sorted(SOURCE_TABLES))
def test_every_input_model_translates_to_sql(name):
    model, _ = SOURCE_TABLES[name]
    assert predicates(model)  # raises NotImplementedError on an untranslatable check


def test_good_table_passes_and_is_coerced_like_pandera(wh):
    run(wh, customers())
    got = coerce_types(CustomersInput, wh.query("SELECT * FROM src.t"))
    expected = validate(CustomersInput, customers(), table="customers")
    pd.testing.assert_frame_equal(got, expected, check_dtype=True)


@pytest.mark.parametrize(
    "changes, column, fragment, example",
    [
        ({"segment": (1, "VIP")}, "segment", "isin", "VIP"),
        ({"fico": (0, 900)}, "fico", "less_than_or_equal_to", 900),
        ({"income": (2, -5)}, "income", "greater_than_or_equal_to", -5),
        ({"party_id": (0, None)}, "party_id", "not_nullable", None),
        ({"party_id": (2, "")}, "party_id", "str_length", ""),
        # a 1 MB identifier: refused before anything is written, and shown cut short
        ({"party_id": (2, "P" * 1_000_000)}, "party_id", "str_length", "P" * 80 + "... (1,000,000 characters)"),
        ({"party_id": (1, "P1")}, "party_id + valid_from", "unique", "P1"),
    ],
)
def test_each_violation_names_column_check_and_rows(wh, changes, column, fragment, example):
    with pytest.raises(ContractViolation) as err:
        run(wh, customers(**changes))
    violation = next(v for v in err.value.violations if v.column == column)
    assert fragment in violation.check
    assert violation.failing_rows >= 1
    assert any(example in e.values() for e in violation.examples)
    assert "src.t" in str(err.value) and column in str(err.value)


def test_missing_column_is_named(wh):
    with pytest.raises(ContractViolation, match="column 'fico': required column is missing"):
        run(wh, customers().drop(columns=["fico"]))


def test_where_clause_limits_what_is_judged(wh):
    df = pd.DataFrame(
        {
            "as_of_date": pd.to_datetime(["2026-11-01", "2026-11-08"]),
            "party_id": ["P1", "P1"],
            "churn_probability": [1.5, 0.2],  # the old snapshot is bad, the one read is fine
            "financial_health_score": [50.0, 60.0],
        }
    )
    run(wh, df, ChurnHealthInput, where="as_of_date = DATE '2026-11-08'")
    with pytest.raises(ContractViolation, match="churn_probability"):
        run(wh, df, ChurnHealthInput, where="as_of_date = DATE '2026-11-01'")


@pytest.mark.parametrize("duplicated", ["P1", "P2", "P3"])
def test_a_key_checked_by_party_range_still_finds_a_duplicate_in_any_range(wh, duplicated):
    """The ranges are those of weekly_io.party_shards: open below and above, so every party,
    including one no active customer has, falls in one of them."""
    df = customers()
    df = pd.concat([df, df[df["party_id"] == duplicated]], ignore_index=True)  # that party's row twice
    wh.replace_table("src.t", df)
    ranges = ["party_id < 'P2'", "party_id >= 'P2' AND party_id < 'P3'", "party_id >= 'P3'"]
    queries = []

    def query(sql):
        queries.append(sql)
        return wh.query(sql)

    with pytest.raises(ContractViolation) as err:
        check_in_warehouse(query, CustomersInput, "src.t", "TRUE", wh.column_names("src.t"), "test", ranges)
    (violation,) = [v for v in err.value.violations if v.check == "unique"]
    assert violation.examples[0]["party_id"] == duplicated
    assert "src.t" in str(err.value) and "party_id + valid_from" in str(err.value)
    assert sum("GROUP BY hash(" in q for q in queries) == len(ranges)  # one grouping per range


def test_type_drift_is_named_not_an_engine_error(wh):
    """Text in a numeric column and a zone-aware timestamp, written straight into the warehouse."""
    churn = pd.DataFrame(
        {
            "as_of_date": pd.to_datetime(["2026-11-08"] * 2),
            "party_id": ["P1", "P2"],
            "churn_probability": ["0.2", "high"],
            "financial_health_score": [50.0, 60.0],
        }
    )
    wh.replace_table("src.t", churn)
    with pytest.raises(ContractViolation) as err:
        check_in_warehouse(
            wh.query,
            ChurnHealthInput,
            "src.t",
            "as_of_date = DATE '2026-11-08'",
            wh.column_types("src.t"),
            source="test",
        )
    (violation,) = err.value.violations
    assert violation.column == "churn_probability" and "a number, found VARCHAR" in violation.check
    assert violation.failing_rows == 1 and violation.examples[0]["churn_probability"] == "high"

    zoned = customers()
    zoned["valid_from"] = zoned["valid_from"].dt.tz_localize("Europe/London")
    wh.replace_table("src.t", zoned)
    with pytest.raises(ContractViolation, match="valid_from.*zone-aware TIMESTAMP WITH TIME ZONE"):
        check_in_warehouse(wh.query, CustomersInput, "src.t", "TRUE", wh.column_types("src.t"), source="test")


@pytest.mark.parametrize(
    "dtype, sql_type, problem",
    [
        ("datetime64[ns]", "TIMESTAMP_NTZ", None),  # Snowflake's zone-naive timestamp
        ("datetime64[ns]", "TIMESTAMP", None),
        ("datetime64[ns]", "DATE", None),
        ("datetime64[ns]", "TIMESTAMP_TZ", "zone-aware"),
        ("datetime64[ns]", "TIMESTAMP_LTZ", "zone-aware"),
        ("datetime64[ns]", "TIMESTAMP WITH TIME ZONE", "zone-aware"),
        ("float64", "NUMBER", None),
        ("float64", "TEXT", "a number"),
        ("Int64", "BIGINT", None),
        ("bool", "VARCHAR", "a boolean"),
        ("str", "NUMBER", None),  # numeric ids are read as text
    ],
)
def test_engine_types_of_both_warehouses(dtype, sql_type, problem):
    from nbp_assets.contract.sql_checks import _type_problem

    got = _type_problem(dtype, sql_type)
    assert (got is None) if problem is None else (problem in got)
