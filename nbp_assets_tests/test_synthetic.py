"""The synthetic bank: contract-valid, deterministic, consistent and realistic enough to rank."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from nbp_assets.contract.inputs import PRODUCT_CLASSES, SOURCE_TABLES
from nbp_assets.contract.validation import validate
from nbp_assets.sources.synthetic import generate, generate_chunks

END_WEEK = date(2026, 11, 9)  # a Monday
HISTORY_WEEKS = 8
EVALUATION_DATE = pd.Timestamp(END_WEEK + timedelta(days=7))
WINDOW_START = pd.Timestamp(END_WEEK - timedelta(days=7 * (HISTORY_WEEKS - 1)))
N = 2_000
SNAPSHOT_TABLES = ("eligibility", "churn_health", "customer_rote", "behaviour")
PARTY_TABLES = ("holdings", "eligibility", "churn_health", "customer_rote", "offer_history", "behaviour", "activity")


@pytest.fixture(scope="module")
def bank() -> dict[str, pd.DataFrame]:
    return generate(N, 42, end_week=END_WEEK, history_weeks=HISTORY_WEEKS)


def _current(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """Versions valid on the evaluation date's eve (valid_from <= day < valid_to)."""
    day = EVALUATION_DATE - pd.Timedelta(days=1)
    live = (df["valid_from"] <= day) & (df["valid_to"].isna() | (df["valid_to"] > day))
    out = df.loc[live]
    assert out[key].is_unique
    return out


def test_every_source_table_is_generated_and_meets_its_contract(bank):
    assert set(bank) == set(SOURCE_TABLES)
    for table, (model, _required) in SOURCE_TABLES.items():
        assert len(bank[table]) > 0, table
        validated = validate(model, bank[table], table=table)
        assert len(validated) == len(bank[table]), table  # nothing filtered or dropped


def test_same_arguments_give_identical_frames_and_another_seed_differs(bank):
    again = generate(N, 42, end_week=END_WEEK, history_weeks=HISTORY_WEEKS)
    other = generate(N, 43, end_week=END_WEEK, history_weeks=HISTORY_WEEKS)
    for table in SOURCE_TABLES:
        pd.testing.assert_frame_equal(bank[table], again[table], check_exact=True)
        assert (pd.util.hash_pandas_object(bank[table]) == pd.util.hash_pandas_object(again[table])).all()
    for table in ("customers", "holdings", "eligibility", "churn_health", "offer_history", "behaviour", "activity"):
        assert not bank[table].equals(other[table]), table


def test_tables_reference_only_existing_parties_and_products(bank):
    parties = set(bank["customers"]["party_id"])
    products = set(bank["product_register"]["product_id"])
    assert len(parties) == N
    for table in PARTY_TABLES:
        unknown = set(bank[table]["party_id"]) - parties
        assert not unknown, (table, sorted(unknown)[:5])
    for table in ("eligibility", "holdings", "offer_history"):
        unknown = set(bank[table]["product_id"]) - products
        assert not unknown, (table, sorted(unknown)[:5])
    # Every (snapshot, active party) has a status for every product, and only active parties do.
    elig = bank["eligibility"]
    per_party = elig.groupby(["as_of_date", "party_id"]).size()
    assert (per_party == len(products)).all()
    customers = bank["customers"]
    for as_of, grp in elig.groupby("as_of_date"):
        live = customers[
            (customers["valid_from"] <= as_of) & (customers["valid_to"].isna() | (customers["valid_to"] > as_of))
        ]
        assert set(grp["party_id"]) == set(live.loc[live["status"] == "ACTIVE", "party_id"]), as_of


def test_customer_master_is_a_consistent_scd2_history(bank):
    c = bank["customers"].sort_values(["party_id", "valid_from"])
    nxt = c.groupby("party_id")["valid_from"].shift(-1)
    superseded = nxt.notna()
    assert (c.loc[superseded, "valid_to"] == nxt[superseded]).all()  # no gaps, no overlaps
    assert c.loc[~superseded, "valid_to"].isna().all()
    changed_in_window = c.loc[superseded & (nxt >= WINDOW_START), "party_id"].nunique()
    assert 0.01 * N <= changed_in_window <= 0.08 * N
    first = c.groupby("party_id")["valid_from"].min()
    joined_in_window = int((first >= WINDOW_START).sum())
    assert joined_in_window >= 10
    current = _current(bank["customers"], "party_id")
    assert 0.90 <= (current["status"] == "ACTIVE").mean() <= 0.98
    assert set(current["status"]) == {"ACTIVE", "DORMANT", "CLOSED"}
    assert (current["jurisdiction"] == "GB").mean() > 0.75
    share = current["segment"].value_counts(normalize=True)
    assert share["MASS"] > share["MASS_AFFLUENT"] > share["AFFLUENT"] > share["PRIVATE"] > 0
    income = current.groupby("segment")["income"].median()
    assert income["MASS"] < income["MASS_AFFLUENT"] < income["AFFLUENT"] < income["PRIVATE"]


def test_affluent_customers_hold_more_products_than_mass(bank):
    current = _current(bank["customers"], "party_id")
    h = bank["holdings"]
    open_now = h[h["closed_on"].isna() | (h["closed_on"] >= EVALUATION_DATE)]
    count = open_now.groupby("party_id").size().reindex(current["party_id"], fill_value=0)
    mean = count.groupby(current["segment"].to_numpy()).mean()
    assert mean["AFFLUENT"] > mean["MASS"] + 1.0
    assert mean["PRIVATE"] > mean["MASS"] + 1.0
    # Every active customer holds an open current account.
    ca = set(bank["product_register"].loc[lambda p: p["product_class"] == "CURRENT_ACCOUNT", "product_id"])
    with_ca = set(open_now.loc[open_now["product_id"].isin(ca), "party_id"])
    assert set(current.loc[current["status"] == "ACTIVE", "party_id"]) <= with_ca
    assert (h["closed_on"].isna() | (h["closed_on"] > h["opened_on"])).all()


def test_churn_rises_as_financial_health_falls(bank):
    ch = bank["churn_health"]
    rho = ch["churn_probability"].rank().corr(ch["financial_health_score"].rank())  # Spearman
    assert rho < -0.3
    low = ch["financial_health_score"] < ch["financial_health_score"].quantile(0.2)
    assert ch.loc[low, "churn_probability"].mean() > 2 * ch.loc[~low, "churn_probability"].mean()


def test_nothing_is_dated_on_or_after_the_evaluation_date(bank):
    checked = 0
    for table, df in bank.items():
        for col in df.columns:
            if pd.api.types.is_datetime64_any_dtype(df[col]):
                assert df[col].dt.tz is None, (table, col)
                late = df[col].dropna() >= EVALUATION_DATE
                assert not late.any(), (table, col, df.loc[late[late].index, col].head().tolist())
                checked += 1
    assert checked == 13  # every date/timestamp column of the nine tables
    # Snapshots: one per week, dated the Sunday closing it.
    sundays = {pd.Timestamp(WINDOW_START + pd.Timedelta(days=7 * k + 6)) for k in range(HISTORY_WEEKS)}
    for table in SNAPSHOT_TABLES:
        assert set(bank[table]["as_of_date"]) == sundays, table
    events = bank["activity"]["event_time"]
    assert events.min() >= WINDOW_START
    assert bank["activity"]["activity_id"].is_monotonic_increasing
    assert events.is_monotonic_increasing


def test_product_register_covers_classes_lifecycles_and_retention(bank):
    reg = bank["product_register"]
    current = _current(reg, "product_id")
    assert len(current) == 20
    assert set(current["product_class"]) == set(PRODUCT_CLASSES)
    assert {"SUNSET", "UNDER_CAPACITY"} <= set(current["lifecycle_stage"])
    assert 2 <= int(current["is_retention"].sum()) <= 3
    assert (current.loc[current["is_retention"], "product_class"] == "SAVINGS").any()
    assert ((current["product_class"] == "CARD") & (current["spend_category"] == "TRAVEL")).any()
    assert (reg["valid_from"].groupby(reg["product_id"]).min() < WINDOW_START).all()
    assert reg["product_id"].duplicated().sum() >= 1  # one product changes stage mid-window


def test_eligible_share_is_realistic_and_stable_week_to_week(bank):
    elig = bank["eligibility"]
    share = (elig["eligibility_status"] == "ELIGIBLE").mean()
    assert 0.45 <= share <= 0.75
    assert set(elig["eligibility_status"]) == {"ELIGIBLE", "INELIGIBLE", "REFERRED"}
    wide = elig.pivot(index=["party_id", "product_id"], columns="as_of_date", values="eligibility_status")
    a, b = wide.iloc[:, -2], wide.iloc[:, -1]
    both = a.notna() & b.notna()
    assert (a[both] == b[both]).mean() > 0.9
    # Mortgages need income: eligible customers earn more than ineligible ones.
    cust = _current(bank["customers"], "party_id").set_index("party_id")
    mortgage = bank["product_register"].loc[lambda p: p["product_class"] == "MORTGAGE", "product_id"]
    last = elig[(elig["as_of_date"] == elig["as_of_date"].max()) & elig["product_id"].isin(mortgage)]
    income = cust["income"].reindex(last["party_id"]).to_numpy(dtype="float64", na_value=np.nan)
    is_eligible = (last["eligibility_status"] == "ELIGIBLE").to_numpy()
    assert np.nanmedian(income[is_eligible]) > 1.5 * np.nanmedian(income[~is_eligible])


def test_offers_and_behaviour_carry_the_signals_the_ranking_needs(bank):
    offers = bank["offer_history"]
    assert offers["offer_id"].is_unique
    rejected = offers[offers["outcome"] == "REJECTED"]
    age = (EVALUATION_DATE - rejected["outcome_at"]).dt.days
    assert (age <= 90).any() and ((age > 90) & (age <= 180)).any()  # the cooling-off boundary matters
    assert offers.loc[offers["outcome"] == "PENDING", "outcome_at"].isna().all()
    assert offers.loc[offers["outcome"] != "PENDING", "outcome_at"].notna().all()
    assert (offers["outcome_at"].dropna() >= offers.loc[offers["outcome_at"].notna(), "offered_at"]).all()
    beh = bank["behaviour"]
    idle_months = beh["current_account_balance"] / beh["monthly_spend"].clip(lower=100.0)
    assert 0.05 < (idle_months > 6).mean() < 0.5
    travel = beh["top_spend_category"] == "TRAVEL"
    assert beh.loc[travel, "fx_active_months_6m"].mean() > 2 * beh.loc[~travel, "fx_active_months_6m"].mean()
    activity = bank["activity"]
    assert (
        activity["activity_type"]
        .isin({"branch_visit", "deposit", "web_open", "mobile_open", "new_account", "fx_payment", "card_payment"})
        .all()
    )
    assert (activity["activity_type"] == "new_account").any()
    per_party_month = activity.groupby("party_id").size() / (HISTORY_WEEKS * 7 / 30.4)
    assert per_party_month.median() <= 6


def test_rejects_an_end_week_that_is_not_a_monday():
    with pytest.raises(ValueError, match="not a Monday"):
        generate(10, 1, end_week=date(2026, 11, 10))


# ----------------------------------------------------------------------------- chunks

CHUNK = 300


@pytest.fixture(scope="module")
def chunks() -> list[dict[str, pd.DataFrame]]:
    return list(generate_chunks(3 * CHUNK, 42, end_week=END_WEEK, history_weeks=2, chunk_customers=CHUNK))


def test_chunked_generation_is_deterministic_and_chunks_differ(chunks):
    assert len(chunks) == 3
    again = list(generate_chunks(3 * CHUNK, 42, end_week=END_WEEK, history_weeks=2, chunk_customers=CHUNK))
    for chunk, same in zip(chunks, again, strict=True):
        assert list(chunk) == list(same)
        for table in chunk:
            pd.testing.assert_frame_equal(chunk[table], same[table], check_exact=True)
    # Each chunk draws its own customers, not a copy of chunk 0 under other ids.
    segments = [c["customers"]["segment"].to_numpy() for c in chunks]
    assert not np.array_equal(segments[0], segments[1]) and not np.array_equal(segments[1], segments[2])


def test_chunk_0_is_what_generate_gives(chunks):
    # generate(n) is the one chunk of a bank of n; chunk 0 of a larger bank is the same data
    # (here: ids have the same widths below 10M customers, and numbering starts at 1).
    alone = generate(CHUNK, 42, end_week=END_WEEK, history_weeks=2)
    assert list(alone) == list(chunks[0]) == list(SOURCE_TABLES)
    for table in SOURCE_TABLES:
        pd.testing.assert_frame_equal(alone[table], chunks[0][table], check_exact=True)
    single = list(generate_chunks(CHUNK, 42, end_week=END_WEEK, history_weeks=2, chunk_customers=CHUNK + 1))
    assert len(single) == 1
    for table in SOURCE_TABLES:
        pd.testing.assert_frame_equal(alone[table], single[0][table], check_exact=True)


def test_ids_are_unique_across_chunks_and_tables_stay_within_their_chunk(chunks):
    assert "product_register" in chunks[0]
    assert all(set(c) == set(SOURCE_TABLES) - {"product_register"} for c in chunks[1:])
    whole = {t: pd.concat([c[t] for c in chunks if t in c], ignore_index=True) for t in SOURCE_TABLES}
    assert set(whole["customers"]["party_id"]) == {f"P{i:07d}" for i in range(1, 3 * CHUNK + 1)}
    assert (whole["activity"]["activity_id"].to_numpy() == np.arange(1, len(whole["activity"]) + 1)).all()
    offers = whole["offer_history"]["offer_id"]
    assert offers.tolist() == [f"OF{i:09d}" for i in range(1, len(offers) + 1)]
    for k, chunk in enumerate(chunks):
        parties = set(chunk["customers"]["party_id"])
        assert parties == {f"P{i:07d}" for i in range(k * CHUNK + 1, (k + 1) * CHUNK + 1)}
        for table in PARTY_TABLES:
            assert set(chunk[table]["party_id"]) <= parties, (k, table)


def test_every_chunk_meets_the_contract_with_the_same_dtypes(chunks):
    # A last chunk of one customer: tiny tables, some possibly empty, same dtypes (appends never fail).
    tail = list(generate_chunks(CHUNK + 1, 42, end_week=END_WEEK, history_weeks=2, chunk_customers=CHUNK))[-1]
    assert len(tail["customers"]["party_id"].unique()) == 1
    for k, chunk in enumerate([*chunks, tail]):
        for table, df in chunk.items():
            assert df.dtypes.equals(chunks[0][table].dtypes), (k, table)
            model, _required = SOURCE_TABLES[table]
            assert len(validate(model, df, table=table)) == len(df), (k, table)


def test_party_id_width_follows_the_whole_bank():
    # 10M customers need 8 digits: the first chunk already uses them (no 10M-row test: the
    # width comes from the argument, the chunk holds 2 customers).
    first = next(iter(generate_chunks(10_000_000, 1, end_week=END_WEEK, history_weeks=1, chunk_customers=2)))
    assert first["customers"]["party_id"].unique().tolist() == ["P00000001", "P00000002"]
