"""The warehouse SQL model gives nbp-1.0's pandas answers bit for bit (issue: same answers).

A model_version must keep its meaning when the engine moves: for the same inputs and weights
the SQL week (DuckDB here, Snowflake in production) equals the pandas reference kept in
reference_model.py, on random banks and on hand-made boundary rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from nbp_assets.core.partitions import Week
from nbp_assets.core.warehouse import HISTORY_TABLE, SOURCE_SCHEMA, DuckDBWarehouse
from nbp_assets.sources.synthetic import generate
from nbp_assets.weekly import local
from nbp_assets.weekly.assets import build_engine_assets
from nbp_assets.weekly.signals import WeekInputs
from nbp_assets.weekly.vocabulary import ALL_SIGNALS, POSITIVE_SIGNALS
from nbp_assets.weekly.weights import HEALTH_THRESHOLD, WHEN_UNKNOWN, load_weights, weights_from_frame
from nbp_assets_tests import reference_model as ref

WEEK = Week.from_key("2026-11-09")
E = pd.Timestamp(WEEK.evaluation_date)
DAY = pd.Timedelta(days=1)
WEIGHTS = load_weights()


def sql_week(tmp_path, tables: dict[str, pd.DataFrame], weights=WEIGHTS) -> pd.DataFrame:
    """The week through the real assets (point-in-time readers, gate, signals, scores, top 3)."""
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"))
    for name, df in tables.items():
        warehouse.replace_table(f"{SOURCE_SCHEMA}.{name}", df)
    assets = [a for a in build_engine_assets(weights) if a.key.path[-1] != "nbp_current"]
    result = dg.materialize(assets, partition_key=WEEK.key, resources={"warehouse": warehouse}, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    got = warehouse.query(f"SELECT * FROM {HISTORY_TABLE} ORDER BY party_id, rank")
    got["score"] = got["score"].astype("float64")
    return got


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert len(want) > 0
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), want.reset_index(drop=True), check_exact=True, check_dtype=False
    )


@pytest.mark.parametrize("seed", [3, 17])
def test_random_bank_gives_the_reference_rows(tmp_path, seed):
    tables = generate(1500, seed, end_week=WEEK.start, history_weeks=2)
    assert_same(sql_week(tmp_path, tables), ref.reference_week(tables, WEEK.evaluation_date, WEIGHTS))


def _boundary_bank() -> dict[str, pd.DataFrame]:
    """A small bank plus hand-made rows on every point-in-time edge of the week."""
    t = generate(300, 5, end_week=WEEK.start, history_weeks=1)
    parties = t["customers"]["party_id"].drop_duplicates().tolist()
    products = t["product_register"]["product_id"].drop_duplicates().tolist()
    active = t["customers"][t["customers"]["status"] == "ACTIVE"]["party_id"].tolist()
    p1, p2, p3, p4 = active[:4]
    cust = t["customers"]
    # versions starting on E (not yet valid) and on E-1 (valid): p1 becomes DORMANT on E only.
    new = cust[cust["party_id"].isin([p1, p2])].copy()
    cust.loc[cust["party_id"].isin([p1, p2]), "valid_to"] = [E, E - DAY]
    new["valid_from"] = [E, E - DAY]
    new["valid_to"] = pd.NaT
    new["status"] = ["DORMANT", "ACTIVE"]
    t["customers"] = pd.concat([cust, new], ignore_index=True)
    # holdings opened / closed on E and E-1
    h = pd.DataFrame(
        {
            "party_id": [p1, p1, p2, p2],
            "product_id": products[:2] + products[2:4],
            "opened_on": [E, E - DAY, E - 30 * DAY, E - 30 * DAY],
            "closed_on": [pd.NaT, pd.NaT, E, E - DAY],
        }
    )
    t["holdings"] = pd.concat([t["holdings"], h], ignore_index=True)
    # rejections 89, 90 and 91 days before E (and one on E itself)
    when = [E - 89 * DAY + pd.Timedelta(hours=23), E - 90 * DAY, E - 91 * DAY + pd.Timedelta(hours=23, minutes=59), E]
    o = pd.DataFrame(
        {
            "offer_id": [f"XO{i}" for i in range(4)],
            "party_id": [p3] * 4,
            "product_id": products[4:8],
            "offered_at": [w - 5 * DAY for w in when],
            "outcome": "REJECTED",
            "outcome_at": when,
        }
    )
    t["offer_history"] = pd.concat([t["offer_history"], o], ignore_index=True)
    # a snapshot dated E is not yet visible: a copy of the latest with everything changed
    for name, col, value in (
        ("churn_health", "churn_probability", 0.99),
        ("behaviour", "monthly_spend", 1.0),
        ("customer_rote", "customer_rote", -0.9),
    ):
        snap = t[name][t[name]["as_of_date"] == t[name]["as_of_date"].max()].copy()
        snap["as_of_date"], snap[col] = E, value
        t[name] = pd.concat([t[name], snap], ignore_index=True)
    # parties missing from churn, ROTE and behaviour (in the snapshot the week uses)
    for name, who in (("churn_health", p4), ("customer_rote", p3), ("behaviour", p2)):
        t[name] = t[name][t[name]["party_id"] != who].reset_index(drop=True)
    assert len(parties) > 4
    return t


def test_boundary_rows_give_the_reference_rows(tmp_path):
    tables = _boundary_bank()
    assert_same(sql_week(tmp_path, tables), ref.reference_week(tables, WEEK.evaluation_date, WEIGHTS))


def test_rote_absent_gives_the_reference_rows(tmp_path):
    tables = {k: v for k, v in _boundary_bank().items() if k != "customer_rote"}
    assert_same(sql_week(tmp_path, tables), ref.reference_week(tables, WEEK.evaluation_date, WEIGHTS))


def _tie_inputs(rng: np.random.Generator, n: int) -> WeekInputs:
    """Signals drawn from few values, so score ties and primary_signal ties are common."""
    products = pd.DataFrame(
        {
            "product_id": [f"PR{i:02d}" for i in range(8)],
            "product_class": ["SAVINGS", "SAVINGS", "CARD", "CARD", "LENDING", "FX_WALLET", "SAVINGS", "CARD"],
            "lifecycle_stage": ["MATURE", "MATURE", "SUNSET", "MATURE", "UNDER_CAPACITY", "MATURE", "MATURE", "MATURE"],
            "is_retention": [True, True, False, False, True, False, True, False],
            "spend_category": [None, None, "TRAVEL", "TRAVEL", None, "TRAVEL", None, "EVERYDAY"],
            "target_rote": [0.1, 0.1, 0.15, 0.15, 0.2, 0.1, 0.1, 0.12],
        }
    )
    parties = [f"C{i:04d}" for i in range(n)]
    pick = rng.random((n, len(products))) < 0.8
    cand = pd.DataFrame(
        [(p, q) for i, p in enumerate(parties) for j, q in enumerate(products["product_id"]) if pick[i, j]],
        columns=["party_id", "product_id"],
    )
    return WeekInputs(
        candidates=cand,
        customers=pd.DataFrame(
            {"party_id": parties, "segment": rng.choice(["MASS", "AFFLUENT"], n), "jurisdiction": "GB"}
        ),
        products=products,
        holdings=cand.sample(frac=0.1, random_state=1)[["party_id", "product_id"]],
        churn=pd.DataFrame(
            {
                "party_id": parties,
                "churn_probability": rng.choice([0.0, 0.25, 0.5, 1.0], n),
                # on, above and below the default rules' threshold (40)
                "financial_health_score": rng.choice([20.0, 39.9, 40.0, 75.0], n),
            }
        ),
        behaviour=pd.DataFrame(
            {
                "party_id": parties,
                "current_account_balance": rng.choice([0.0, 3000.0, 12000.0], n),
                "monthly_spend": 1000.0,
                "fx_active_months_6m": rng.choice([0, 3, 6], n),
                "top_spend_category": rng.choice(["TRAVEL", "EVERYDAY"], n),
            }
        ).astype({"fx_active_months_6m": "Int64"}),
        rejections=cand.sample(frac=0.05, random_state=2).assign(
            outcome_at=pd.Timestamp(WEEK.evaluation_date) - 10 * DAY
        ),
        evaluation_date=WEEK.evaluation_date,
        rote=pd.DataFrame({"party_id": parties, "customer_rote": rng.choice([0.0, 0.05, 0.1], n)}),
    )


def test_score_and_primary_signal_ties_give_the_reference_rows():
    rng = np.random.default_rng(7)
    inputs = _tie_inputs(rng, 400)
    # equal weights on every lifting signal of every class: primary_signal ties everywhere; every
    # class down-weights by half below health 0.5 (health 20, 39.9 below; 75 above)
    flat = weights_from_frame(
        pd.DataFrame(
            [
                (c, s, 1 / len(POSITIVE_SIGNALS) if s in POSITIVE_SIGNALS else 0.5)
                for c in WEIGHTS.matrix.index
                for s in (*ALL_SIGNALS, HEALTH_THRESHOLD)
            ],
            columns=["product_class", "signal", "weight"],
        )
    )
    # and the configuration without a rule: the new parts inert, nbp-1.0's model
    no_rule = WEIGHTS.as_long()
    no_rule = weights_from_frame(no_rule[~no_rule["signal"].isin(["suitability", HEALTH_THRESHOLD, WHEN_UNKNOWN])])
    for weights in (WEIGHTS, flat, no_rule):
        want, want_scored, _ = ref.rank_week(inputs, weights, datetime(2026, 11, 16))
        got, got_scored, _ = local.rank_week(inputs, weights, datetime(2026, 11, 16))
        assert_same(got, want)
        key = ["party_id", "product_id"]
        pd.testing.assert_frame_equal(
            got_scored.sort_values(key).reset_index(drop=True),
            want_scored.sort_values(key).reset_index(drop=True),
            check_exact=True,
            check_dtype=False,
        )
        ties = want_scored.groupby("party_id")["score"].apply(lambda s: s.duplicated().any()).sum()
        assert ties > 10  # the ties this test is about really occur


def test_a_stale_snapshot_fails_the_week_naming_table_and_date(tmp_path, monkeypatch):
    tables = generate(200, 5, end_week=WEEK.start, history_weeks=2)
    latest = tables["eligibility"]["as_of_date"].max()
    tables["eligibility"] = tables["eligibility"][tables["eligibility"]["as_of_date"] < latest]  # last week's only
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"))
    for name, df in tables.items():
        warehouse.replace_table(f"{SOURCE_SCHEMA}.{name}", df)
    assets = [a for a in build_engine_assets(WEIGHTS) if a.key.path[-1] in ("customers", "eligibility")]
    result = dg.materialize(assets, partition_key=WEEK.key, resources={"warehouse": warehouse}, raise_on_error=False)
    assert not result.success
    failures = [e.step_failure_data for e in result.all_events if e.is_step_failure]
    message = "\n".join(f.user_failure_data.description if f.user_failure_data else f.error.message for f in failures)
    stale = (latest - pd.Timedelta(days=7)).date()
    assert "nbp_source.eligibility" in message and f"dated {stale}" in message and "8 days old" in message
    monkeypatch.setenv("NBP_MAX_SNAPSHOT_AGE_DAYS", "8")  # an operator may accept it, knowingly
    assert dg.materialize(assets, partition_key=WEEK.key, resources={"warehouse": warehouse}).success
