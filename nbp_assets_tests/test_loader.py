"""A user's own files: valid folders load, and every kind of bad file is reported clearly."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from nbp_assets.contract.inputs import SOURCE_TABLES
from nbp_assets.sources.loader import LoadError, load_directory
from nbp_assets.weekly.weights import DEFAULT_WEIGHTS_FILE

D = pd.Timestamp


def valid_tables() -> dict[str, pd.DataFrame]:
    """A tiny but complete bank: 3 customers, 3 products, a few rows in every other table."""
    return {
        "customers": pd.DataFrame(
            {
                "party_id": ["C1", "C2", "C3"],
                "jurisdiction": ["GB", "IE", "JE"],
                "segment": ["MASS", "AFFLUENT", "PRIVATE"],
                "age_band": ["18-24", "35-44", "65+"],
                "gender": ["F", None, "M"],
                "status": ["ACTIVE", "ACTIVE", "DORMANT"],
                "income": pd.array([25000, None, 180000], dtype="Int64"),
                "fico": pd.array([640, 720, None], dtype="Int64"),
                "valid_from": [D("2024-01-01")] * 3,
                "valid_to": [pd.NaT, pd.NaT, D("2025-06-30")],
            }
        ),
        "product_register": pd.DataFrame(
            {
                "product_id": ["SAV1", "CARD1", "FX1"],
                "product_name": ["Easy Saver", "Cashback Card", "Travel Wallet"],
                "product_class": ["SAVINGS", "CARD", "FX_WALLET"],
                "lifecycle_stage": ["MATURE", "GROWTH", "LAUNCH"],
                "is_retention": [True, False, False],
                "spend_category": [None, "EVERYDAY", "TRAVEL"],
                "target_rote": [0.12, 0.2, -0.05],
                "valid_from": [D("2024-01-01")] * 3,
                "valid_to": [pd.NaT] * 3,
            }
        ),
        "holdings": pd.DataFrame(
            {
                "party_id": ["C1", "C2"],
                "product_id": ["CARD1", "SAV1"],
                "opened_on": [D("2024-02-01"), D("2024-03-15")],
                "closed_on": [pd.NaT, D("2024-09-30")],
            }
        ),
        "eligibility": pd.DataFrame(
            {
                "as_of_date": [D("2025-01-05")] * 4,
                "party_id": ["C1", "C1", "C2", "C3"],
                "product_id": ["SAV1", "FX1", "CARD1", "SAV1"],
                "eligibility_status": ["ELIGIBLE", "INELIGIBLE", "ELIGIBLE", "REFERRED"],
            }
        ),
        "churn_health": pd.DataFrame(
            {
                "as_of_date": [D("2025-01-05")] * 3,
                "party_id": ["C1", "C2", "C3"],
                "churn_probability": [0.1, 0.55, 0.9],
                "financial_health_score": [62.5, 80.0, 15.0],
            }
        ),
        "customer_rote": pd.DataFrame(
            {
                "as_of_date": [D("2025-01-05")] * 2,
                "party_id": ["C1", "C2"],
                "customer_rote": [0.08, -0.02],
            }
        ),
        "offer_history": pd.DataFrame(
            {
                "offer_id": ["O1", "O2"],
                "party_id": ["C1", "C3"],
                "product_id": ["SAV1", "FX1"],
                "offered_at": [D("2024-11-02 09:30:00"), D("2024-12-01 14:00:00")],
                "outcome": ["REJECTED", "PENDING"],
                "outcome_at": [D("2024-11-03 10:00:00"), pd.NaT],
            }
        ),
        "behaviour": pd.DataFrame(
            {
                "as_of_date": [D("2025-01-05")] * 3,
                "party_id": ["C1", "C2", "C3"],
                "current_account_balance": [1200.0, 45000.0, 0.0],
                "monthly_spend": [900.0, 3100.0, 50.0],
                "fx_active_months_6m": pd.array([0, 4, 6], dtype="Int64"),
                "top_spend_category": ["EVERYDAY", "TRAVEL", None],
            }
        ),
        "activity": pd.DataFrame(
            {
                "activity_id": pd.array([1, 2, 3], dtype="Int64"),
                "party_id": ["C1", "C1", "C2"],
                "event_time": [D("2025-01-01 08:00:00"), D("2025-01-02 12:30:00"), D("2025-01-03 18:45:00")],
                "activity_type": ["LOGIN", "VIEW_PRODUCT", "LOGIN"],
                "propensity_to_buy": [0.2, 0.7, 0.4],
                "ip_address": ["10.0.0.1", None, "10.0.0.2"],
            }
        ),
    }


def write(folder, tables: dict[str, pd.DataFrame], fmt: str = "csv"):
    for name, df in tables.items():
        if fmt == "csv":
            df.to_csv(folder / f"{name}.csv", index=False)
        else:
            df.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def write_csv_text(folder, name: str, df: pd.DataFrame) -> None:
    """Write a frame of text exactly as given, the way a user's extract would look."""
    df.astype(object).to_csv(folder / f"{name}.csv", index=False)


def as_text(df: pd.DataFrame) -> pd.DataFrame:
    """The CSV text of a typed frame, so a test can plant any text in any cell."""
    text = df.copy()
    for c in text.columns:
        if pd.api.types.is_datetime64_any_dtype(text[c]):
            text[c] = text[c].dt.strftime("%Y-%m-%d %H:%M:%S")
        text[c] = text[c].astype(object).where(text[c].notna(), "")
        text[c] = text[c].map(str)
    return text


def load_error(folder) -> str:
    with pytest.raises(LoadError) as info:
        load_directory(folder)
    return str(info.value)


def block_of(message: str, file_name: str) -> str:
    """The part of the error about one file, so assertions cannot match another file's block."""
    blocks = message.split("\n\n")
    found = [b for b in blocks if b.splitlines()[0].split("  [")[0].endswith(file_name)]
    assert found, f"no block for {file_name} in:\n{message}"
    return found[0]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_valid_folder_loads_with_contract_types(tmp_path, fmt):
    write(tmp_path, valid_tables(), fmt)
    loaded = load_directory(tmp_path)

    assert set(loaded.tables) == set(SOURCE_TABLES)
    assert loaded.missing_optional == []
    assert loaded.weights is None
    assert loaded.files["customers"] == tmp_path / f"customers.{fmt}"
    customers = loaded.tables["customers"]
    assert customers["fico"].dtype == "Int64"
    assert customers["fico"].tolist()[:2] == [640, 720] and pd.isna(customers["fico"].iloc[2])
    assert customers["valid_from"].dtype == "datetime64[ns]"
    assert customers["valid_to"].isna().tolist() == [True, True, False]
    assert loaded.tables["product_register"]["is_retention"].tolist() == [True, False, False]
    assert loaded.tables["offer_history"]["offered_at"].iloc[0] == D("2024-11-02 09:30:00")
    assert list(loaded.tables["eligibility"].index) == [0, 1, 2, 3]


def test_csv_booleans_are_parsed_strictly_not_by_truthiness(tmp_path):
    # pandas' astype(bool) would turn the text "false" into True.
    write(tmp_path, valid_tables())
    products = as_text(valid_tables()["product_register"])
    products["is_retention"] = ["FALSE", "true", "0"]
    write_csv_text(tmp_path, "product_register", products)

    loaded = load_directory(tmp_path)
    assert loaded.tables["product_register"]["is_retention"].tolist() == [False, True, False]


def test_optional_customer_rote_may_be_absent(tmp_path):
    tables = valid_tables()
    del tables["customer_rote"]
    write(tmp_path, tables)

    loaded = load_directory(tmp_path)
    assert loaded.missing_optional == ["customer_rote"]
    assert "customer_rote" not in loaded.tables


def test_unknown_files_are_ignored(tmp_path):
    write(tmp_path, valid_tables())
    (tmp_path / "README.txt").write_text("notes")
    (tmp_path / "customers_old.csv").write_text("garbage,,\n")
    assert set(load_directory(tmp_path).tables) == set(SOURCE_TABLES)


def test_weights_file_is_loaded_and_validated(tmp_path):
    write(tmp_path, valid_tables())
    shutil.copy(DEFAULT_WEIGHTS_FILE, tmp_path / "weights.csv")
    loaded = load_directory(tmp_path)
    assert list(loaded.weights.columns) == ["product_class", "signal", "weight"]
    assert len(loaded.weights) == len(pd.read_csv(DEFAULT_WEIGHTS_FILE))

    bad = pd.read_csv(DEFAULT_WEIGHTS_FILE, dtype=str)
    bad.loc[0, "weight"] = "lots"
    bad.to_csv(tmp_path / "weights.csv", index=False)
    block = block_of(load_error(tmp_path), "weights.csv")
    assert "column 'weight'" in block and "'lots'" in block

    bad.drop(columns=["signal"]).to_csv(tmp_path / "weights.csv", index=False)
    block = block_of(load_error(tmp_path), "weights.csv")
    assert "column 'signal': required column is missing" in block


def test_missing_required_file_names_the_expected_files(tmp_path):
    tables = valid_tables()
    del tables["eligibility"]
    write(tmp_path, tables)

    message = load_error(tmp_path)
    assert "eligibility.csv" in message and "eligibility.parquet" in message
    assert "required table is missing" in message


def test_csv_and_parquet_of_one_table_is_an_error(tmp_path):
    write(tmp_path, valid_tables())
    valid_tables()["holdings"].to_parquet(tmp_path / "holdings.parquet", index=False)

    message = load_error(tmp_path)
    assert "holdings.csv" in message and "holdings.parquet" in message
    assert "keep exactly one" in message


def test_bad_enum_value(tmp_path):
    tables = valid_tables()
    tables["customers"].loc[1, "segment"] = "VIP"
    write(tmp_path, tables)

    block = block_of(load_error(tmp_path), "customers.csv")
    assert "column 'segment'" in block
    assert "'VIP'" in block and "'C2'" in block and "row 2:" in block


def test_fico_out_of_range(tmp_path):
    tables = valid_tables()
    tables["customers"]["fico"] = pd.array([640, 900, None], dtype="Int64")
    write(tmp_path, tables, "parquet")

    block = block_of(load_error(tmp_path), "customers.parquet")
    assert "column 'fico'" in block and "less_than_or_equal_to(850)" in block
    assert "fico=900" in block


def test_maybe_in_boolean_column(tmp_path):
    write(tmp_path, valid_tables())
    products = as_text(valid_tables()["product_register"])
    products.loc[2, "is_retention"] = "maybe"
    write_csv_text(tmp_path, "product_register", products)

    block = block_of(load_error(tmp_path), "product_register.csv")
    assert "column 'is_retention'" in block and "boolean expected" in block
    assert "'maybe'" in block and "'FX1'" in block and "row 3:" in block


def test_integer_column_rejects_non_integers(tmp_path):
    write(tmp_path, valid_tables())
    behaviour = as_text(valid_tables()["behaviour"])
    behaviour.loc[0, "fx_active_months_6m"] = "2.5"
    write_csv_text(tmp_path, "behaviour", behaviour)

    block = block_of(load_error(tmp_path), "behaviour.csv")
    assert "column 'fx_active_months_6m'" in block and "whole number expected" in block
    assert "'2.5'" in block


@pytest.mark.parametrize("not_a_date", ["next tuesday", "05/01/2025", "2025-02-30", "2025-1-5"])
def test_non_date_in_date_column(tmp_path, not_a_date):
    write(tmp_path, valid_tables())
    churn = as_text(valid_tables()["churn_health"])
    churn.loc[1, "as_of_date"] = not_a_date
    write_csv_text(tmp_path, "churn_health", churn)

    block = block_of(load_error(tmp_path), "churn_health.csv")
    assert "column 'as_of_date'" in block and "ISO date" in block
    assert repr(not_a_date) in block and "'C2'" in block


def test_duplicate_key(tmp_path):
    tables = valid_tables()
    elig = tables["eligibility"]
    tables["eligibility"] = pd.concat([elig, elig.iloc[[2]]], ignore_index=True)
    write(tmp_path, tables)

    block = block_of(load_error(tmp_path), "eligibility.csv")
    assert "duplicate key" in block
    assert "column 'as_of_date + party_id + product_id'" in block
    assert "'C2'" in block and "'CARD1'" in block and "row 5:" in block


def test_eligibility_row_for_unknown_product(tmp_path):
    tables = valid_tables()
    tables["eligibility"].loc[3, "product_id"] = "P404"
    write(tmp_path, tables)

    block = block_of(load_error(tmp_path), "eligibility.csv")
    assert "column 'product_id'" in block and "must exist in product_register" in block
    assert "'P404'" in block and "row 4:" in block


def test_orphans_are_reported_even_when_the_file_also_breaks_its_contract(tmp_path):
    tables = valid_tables()
    tables["eligibility"].loc[3, "product_id"] = "P404"
    tables["eligibility"].loc[0, "eligibility_status"] = "MAYBE"
    write(tmp_path, tables)

    message = load_error(tmp_path)
    assert message.count("eligibility.csv") == 1, "one block per file"
    block = block_of(message, "eligibility.csv")
    assert "'MAYBE'" in block and "'P404'" in block


def test_holding_of_unknown_party(tmp_path):
    tables = valid_tables()
    tables["holdings"].loc[0, "party_id"] = "GHOST"
    write(tmp_path, tables, "parquet")

    block = block_of(load_error(tmp_path), "holdings.parquet")
    assert "column 'party_id'" in block and "must exist in customers" in block and "'GHOST'" in block


def test_missing_column(tmp_path):
    tables = valid_tables()
    tables["product_register"] = tables["product_register"].drop(columns=["product_name"])
    write(tmp_path, tables)

    block = block_of(load_error(tmp_path), "product_register.csv")
    assert "column 'product_name': required column is missing" in block
    assert "ProductRegisterInput" not in block  # pandera's own phrasing names the model, not the column


def test_all_problems_in_all_files_are_reported_at_once(tmp_path):
    tables = valid_tables()
    tables["customers"].loc[0, "jurisdiction"] = "FR"
    tables["activity"].loc[2, "propensity_to_buy"] = 1.7
    del tables["behaviour"]
    write(tmp_path, tables)

    message = load_error(tmp_path)
    assert "'FR'" in block_of(message, "customers.csv")
    assert "1.7" in block_of(message, "activity.csv")
    assert "behaviour.csv or behaviour.parquet" in message
    assert "3 file(s) with problems" in message


def test_parquet_integer_booleans_must_be_zero_or_one(tmp_path):
    # astype(bool) would quietly call 2 True.
    tables = valid_tables()
    tables["product_register"]["is_retention"] = [1, 0, 2]
    write(tmp_path, tables, "parquet")

    block = block_of(load_error(tmp_path), "product_register.parquet")
    assert "column 'is_retention'" in block and "row 3:" in block and "is_retention=2" in block


def test_parquet_timestamps_with_a_time_zone_are_rejected(tmp_path):
    tables = valid_tables()
    tables["activity"]["event_time"] = tables["activity"]["event_time"].dt.tz_localize("UTC")
    write(tmp_path, tables, "parquet")

    block = block_of(load_error(tmp_path), "activity.parquet")
    assert "column 'event_time'" in block and "without time zone" in block


def test_unreadable_csv_and_repeated_header_are_reported(tmp_path):
    write(tmp_path, valid_tables())
    (tmp_path / "churn_health.csv").write_text("as_of_date,party_id\n2025-01-05,C1,extra,cells\n")
    (tmp_path / "holdings.csv").write_text("party_id,product_id,opened_on,closed_on\nC1,CARD1\n")
    (tmp_path / "customer_rote.csv").write_text(
        "as_of_date,party_id,customer_rote,customer_rote\n2025-01-05,C1,0.1,0.2\n"
    )

    message = load_error(tmp_path)
    assert "could not be read as CSV" in block_of(message, "churn_health.csv")
    assert "C1,extra,cells" in block_of(message, "churn_health.csv")
    assert "Expected 4 columns, got 2" in block_of(message, "holdings.csv")  # pandas would pad with nulls
    assert "['customer_rote'] appear more than once" in block_of(message, "customer_rote.csv")


# Versioned masters: one function checks customers and product_register alike.
VERSIONED = [("customers", "party_id", "C1"), ("product_register", "product_id", "SAV1")]


def _with_versions(table: str, key: str, versions: list[tuple[str, str | None]], key_value: str) -> pd.DataFrame:
    """The table with its `key_value` row replaced by one row per (valid_from, valid_to)."""
    frame = valid_tables()[table]
    base = frame[frame[key] == key_value].iloc[0]
    rows = [base.copy() for _ in versions]
    for row, (start, end) in zip(rows, versions):
        row["valid_from"], row["valid_to"] = D(start), (D(end) if end else pd.NaT)
    others = frame[frame[key] != key_value]
    return pd.concat([others, pd.DataFrame(rows)], ignore_index=True).astype(frame.dtypes.to_dict())


@pytest.mark.parametrize("table, key, key_value", VERSIONED)
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_version_ending_before_it_starts_is_rejected(tmp_path, table, key, key_value, fmt):
    tables = valid_tables()
    tables[table] = _with_versions(table, key, [("2024-03-01", "2024-01-15")], key_value)
    write(tmp_path, tables, fmt)

    block = block_of(load_error(tmp_path), f"{table}.{fmt}")
    assert f"[table '{table}']" in block
    assert "column 'valid_to': valid_to must not be before valid_from [1 row(s)]" in block
    assert f"row 3: {key}={key_value!r}, valid_from='2024-03-01T00:00:00', valid_to='2024-01-15T00:00:00'" in block


@pytest.mark.parametrize("table, key, key_value", VERSIONED)
def test_overlapping_versions_are_rejected(tmp_path, table, key, key_value):
    tables = valid_tables()
    # rows 3-5: an open-ended version, then one starting inside it, then a clean later one
    # that still overlaps the open-ended first (it is never closed).
    tables[table] = _with_versions(
        table, key, [("2024-01-01", None), ("2024-06-01", "2024-09-01"), ("2024-09-01", None)], key_value
    )
    write(tmp_path, tables)

    block = block_of(load_error(tmp_path), f"{table}.csv")
    assert f"column 'valid_from + valid_to': overlapping versions of the same {key}" in block
    assert "[3 row(s)]" in block
    assert f"row 3: {key}={key_value!r}, valid_from='2024-01-01T00:00:00', valid_to=None" in block
    assert f"row 4: {key}={key_value!r}, valid_from='2024-06-01T00:00:00', valid_to='2024-09-01T00:00:00'" in block
    assert f"row 5: {key}={key_value!r}, valid_from='2024-09-01T00:00:00', valid_to=None" in block


@pytest.mark.parametrize("table, key, key_value", VERSIONED)
def test_consecutive_versions_load(tmp_path, table, key, key_value):
    # valid_to is exclusive: a version may end the day the next one starts. Rows are in any order.
    tables = valid_tables()
    tables[table] = _with_versions(
        table, key, [("2024-09-01", None), ("2024-01-01", "2024-06-01"), ("2024-06-01", "2024-09-01")], key_value
    )
    write(tmp_path, tables)

    loaded = load_directory(tmp_path)
    assert (loaded.tables[table][key] == key_value).sum() == 3


def test_versions_of_different_keys_may_overlap_and_an_overlap_is_found_out_of_order(tmp_path):
    tables = valid_tables()
    customers = pd.concat([tables["customers"], tables["customers"].iloc[[1]]], ignore_index=True)
    customers["valid_to"] = pd.NaT  # C1, C2, C3 all open from 2024-01-01: different parties, fine
    customers.loc[3, ["valid_from", "valid_to"]] = [D("2023-01-01"), D("2024-02-01")]  # C2 again, ends inside row 2
    tables["customers"] = customers
    write(tmp_path, tables)

    message = load_error(tmp_path)
    assert "1 file(s) with problems" in message
    block = block_of(message, "customers.csv")
    assert "overlapping versions of the same party_id" in block and "[2 row(s)]" in block
    assert "row 2: party_id='C2'" in block and "row 4: party_id='C2'" in block


def test_version_problems_are_reported_with_the_files_other_problems(tmp_path):
    tables = valid_tables()
    tables["product_register"].loc[0, "lifecycle_stage"] = "RETIRED"
    tables["product_register"].loc[1, "valid_to"] = D("2023-01-01")
    write(tmp_path, tables)

    message = load_error(tmp_path)
    assert message.count("product_register.csv") == 1, "one block per file"
    block = block_of(message, "product_register.csv")
    assert "'RETIRED'" in block and "valid_to must not be before valid_from" in block


def _snapshots(*dates: str) -> dict[str, pd.DataFrame]:
    tables = valid_tables()
    for name in ("eligibility", "churn_health", "customer_rote", "behaviour"):
        frame = tables[name]
        tables[name] = pd.concat([frame.assign(as_of_date=D(d)) for d in dates], ignore_index=True)
    return tables


def test_next_steps_name_the_latest_week_the_snapshots_cover():
    from nbp_assets.sources.loader import next_steps

    tables = _snapshots("2026-11-01", "2026-11-08", "2026-11-15")
    assert next_steps(tables, latest_closed="2026-11-16") == [
        "next: python -m nbp_assets materialize --week 2026-11-09",
        "      (earlier weeks: python -m nbp_assets backfill 2026-10-26 2026-11-09)",
    ]
    # The latest week every required snapshot covers: behaviour stops a week earlier.
    tables["behaviour"] = tables["behaviour"][tables["behaviour"]["as_of_date"] < D("2026-11-15")]
    assert (
        next_steps(tables, latest_closed="2026-11-16")[0] == "next: python -m nbp_assets materialize --week 2026-11-02"
    )
    # Never a week that has not closed yet.
    assert (
        next_steps(tables, latest_closed="2026-10-26")[0] == "next: python -m nbp_assets materialize --week 2026-10-26"
    )


def test_next_steps_one_week_and_before_the_first_week():
    from nbp_assets.sources.loader import next_steps

    assert next_steps(_snapshots("2026-11-15"), latest_closed="2026-11-16") == [
        "next: python -m nbp_assets materialize --week 2026-11-09"
    ]
    # Snapshots from before the first week: no week can use them (a week's snapshot is from that week).
    (line,) = next_steps(valid_tables(), latest_closed="2026-11-16")
    assert line.startswith("next: no week can be ranked on these files")
    assert "2025-01-05" in line and "2025-01-06" in line
    # A folder starting before the first week: its history is clipped to the weeks that can run.
    assert next_steps(_snapshots("2024-12-29", "2025-01-05", "2025-01-12"), latest_closed="2026-11-16") == [
        "next: python -m nbp_assets materialize --week 2025-01-06"
    ]


def test_next_steps_without_snapshots_say_what_is_missing():
    from nbp_assets.sources.loader import next_steps

    tables = valid_tables()
    tables["churn_health"] = tables["churn_health"].iloc[:0]
    (line,) = next_steps(tables, latest_closed="2026-11-16")
    assert line.startswith("next: no week can be ranked yet: churn_health has no snapshot")
