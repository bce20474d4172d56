"""Outcome monitoring (offer_outcomes) and week-over-week drift (model_drift) on hand-made data."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from nbp_assets.core.partitions import Week
from nbp_assets.core.warehouse import HISTORY_TABLE, SOURCE_SCHEMA, DuckDBWarehouse
from nbp_assets.monitoring import model as monitoring
from nbp_assets.monitoring.assets import (
    NO_ELIGIBLE_DRIFT,
    SCORE_DRIFT,
    SIGNAL_DRIFT,
    build_monitoring_assets,
)
from nbp_assets.weekly.vocabulary import ALL_SIGNALS

WEEK = Week.from_key("2026-11-09")
BEFORE = Week.from_key("2026-11-02")
MON = pd.Timestamp(WEEK.start)


@pytest.fixture
def warehouse(tmp_path):
    return DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"))


def _customers(week: Week, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "week_start": pd.Timestamp(week.start),
            "party_id": [f"P{i:03d}" for i in range(n)],
            "jurisdiction": ["GB" if i % 2 else "IE" for i in range(n)],
            "segment": "MASS",
            "age_band": "25-34",
            "gender": None,
            "status": "ACTIVE",
            "income": pd.array([50_000] * n, dtype="Int64"),
            "fico": pd.array([700] * n, dtype="Int64"),
        }
    )


def _materialize(warehouse, name):
    asset = next(a for a in build_monitoring_assets() if a.key.path[-1] == name)
    return dg.materialize([asset], partition_key=WEEK.key, resources={"warehouse": warehouse}, raise_on_error=False)


def test_outcome_rates_by_rank_signal_and_group_show_who_accepted_less(warehouse):
    customers = _customers(WEEK, 80)
    warehouse.replace_table("nbp_work.customers", customers)
    # the top 3 current during the week: published at its Monday (the previous week's ranking)
    ranked = pd.DataFrame(
        {
            "party_id": customers["party_id"],
            "jurisdiction": customers["jurisdiction"],
            "rank": 1,
            "product_id": "SAV",
            "score": 0.5,
            "primary_signal": "idle_cash",
            "model_version": "m1",
            "evaluated_at": MON,
        }
    )
    warehouse.replace_table(HISTORY_TABLE, ranked)
    # IE (even parties) accept 30 of 40 offers, GB 10 of 40; one extra offer is outside the
    # top 3, one is answered only after the evaluation date (pending then), one before the week
    day = pd.Timedelta(days=1)
    parties = customers["party_id"].tolist()
    outcome = ["ACCEPTED" if (i % 2 == 0 and i < 60) or (i % 2 == 1 and i < 20) else "REJECTED" for i in range(80)]
    offers = pd.DataFrame(
        {
            "offer_id": [f"O{i}" for i in range(80)],
            "party_id": parties,
            "product_id": "SAV",
            "offered_at": MON + day,
            "outcome": outcome,
            "outcome_at": MON + 2 * day,
        }
    )
    extra = pd.DataFrame(
        {
            "offer_id": ["X1", "X2", "X3"],
            "party_id": ["P000", "P001", "P002"],
            "product_id": ["CARD", "SAV", "SAV"],
            "offered_at": [MON + day, MON + day, MON - day],
            "outcome": ["ACCEPTED", "ACCEPTED", "ACCEPTED"],
            "outcome_at": [MON + 2 * day, MON + 8 * day, MON],
        }
    )
    warehouse.replace_table(f"{SOURCE_SCHEMA}.offer_history", pd.concat([offers, extra], ignore_index=True))
    assert _materialize(warehouse, "offer_outcomes").success
    rates = warehouse.query("SELECT * FROM nbp_work.offer_outcomes").set_index(["by", "group"])
    assert rates.loc[("jurisdiction", "IE"), ["offered", "accepted"]].tolist() == [41, 31]  # X1 made by P000 (IE)
    assert rates.loc[("jurisdiction", "GB"), ["offered", "accepted", "rejected"]].tolist() == [41, 10, 30]  # X2 pending
    assert rates.loc[("rank", "1"), "offered"] == 81 and rates.loc[("rank", monitoring.NOT_RECOMMENDED), "offered"] == 1
    assert rates.loc[("primary_signal", "idle_cash"), "accepted"] == 40
    assert rates.loc[("model_version", "m1"), "acceptance_rate"] == pytest.approx(40 / 81)
    gb = rates.loc[("jurisdiction", "GB")]
    assert gb["acceptance_ci_low"] < 10 / 41 < gb["acceptance_ci_high"]
    gaps = monitoring.acceptance_gaps(rates.reset_index(), ["jurisdiction"], 30)
    assert gaps.iloc[0][["highest", "lowest"]].tolist() == ["IE", "GB"]
    assert gaps.iloc[0]["gap_pp"] == pytest.approx((31 / 41 - 10 / 41) * 100, abs=1e-4)


def _model_week(warehouse, week: Week, n: int, idle: float, score: float, eligible: int):
    customers = _customers(week, n)
    pairs = pd.DataFrame(
        {"week_start": pd.Timestamp(week.start), "party_id": customers["party_id"][:eligible], "product_id": "SAV"}
    )
    signals = pairs.copy()
    for s in ALL_SIGNALS:
        signals[s] = idle if s == "idle_cash" else 0.1
    scores = pairs.assign(score=score)
    for name, df in (("customers", customers), ("eligibility", pairs), ("signals", signals), ("scores", scores)):
        warehouse.append_table(f"nbp_work.{name}", df) if warehouse.table_exists(
            f"nbp_work.{name}"
        ) else warehouse.replace_table(f"nbp_work.{name}", df)


def _checks(result):
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations() if e.check_name != "contract"}


def test_a_steady_week_passes_and_a_drifting_week_warns(warehouse):
    _model_week(warehouse, BEFORE, 100, idle=0.20, score=0.40, eligible=90)
    _model_week(warehouse, WEEK, 100, idle=0.24, score=0.44, eligible=89)  # within every threshold
    result = _materialize(warehouse, "model_drift")
    assert result.success and _checks(result) == {SIGNAL_DRIFT: True, SCORE_DRIFT: True, NO_ELIGIBLE_DRIFT: True}


def test_each_drift_is_found_by_its_own_check(warehouse):
    _model_week(warehouse, BEFORE, 100, idle=0.20, score=0.40, eligible=90)
    _model_week(warehouse, WEEK, 100, idle=0.26, score=0.46, eligible=87)  # 0.06, 0.06, 3 points
    result = _materialize(warehouse, "model_drift")
    assert result.success  # a warning, not a failure
    assert _checks(result) == {SIGNAL_DRIFT: False, SCORE_DRIFT: False, NO_ELIGIBLE_DRIFT: False}
    drift = warehouse.query("SELECT * FROM nbp_work.model_drift").set_index("metric")
    assert drift.loc["mean_idle_cash", "drifted"] and not drift.loc["mean_churn_risk", "drifted"]
    assert drift.loc["no_eligible_product_share", "change"] == pytest.approx(0.03)


def test_the_first_week_has_nothing_to_drift_from(warehouse):
    _model_week(warehouse, WEEK, 100, idle=0.26, score=0.46, eligible=87)
    result = _materialize(warehouse, "model_drift")
    assert result.success and all(_checks(result).values())


def test_a_week_without_offers_writes_an_empty_slice(warehouse):
    warehouse.replace_table("nbp_work.customers", _customers(WEEK, 10))
    offers = pd.DataFrame(
        {
            "offer_id": ["O1"],
            "party_id": ["P001"],
            "product_id": ["SAV"],
            "offered_at": [MON - pd.Timedelta(days=3)],
            "outcome": ["ACCEPTED"],
            "outcome_at": [MON],
        }
    )
    warehouse.replace_table(f"{SOURCE_SCHEMA}.offer_history", offers)  # made the week before
    result = _materialize(warehouse, "offer_outcomes")
    assert result.success
    assert result.asset_materializations_for_node("offer_outcomes")[0].metadata["offers"].value == 0


@pytest.mark.parametrize("n, distinct", [(1, 1), (2, 2), (3, 1), (10, 4), (1001, 37), (20000, 20000)])
def test_score_quantiles_from_the_histogram_are_the_engines_percentile_cont(n, distinct):
    """The drift quantiles come from the score's histogram (bounded memory at any bank size):
    they must be, bit for bit, what percentile_cont gives on the scores themselves."""
    import duckdb
    import numpy as np

    rng = np.random.default_rng(n)
    values = np.round(rng.random(distinct), 6)
    scores = pd.DataFrame({"score": rng.choice(values, size=n)})
    con = duckdb.connect()
    con.register("scores_in", scores)
    got = con.sql(monitoring.score_quantiles_sql("scores_in")).fetchall()[0]
    exact = ", ".join(f"percentile_cont({q}) WITHIN GROUP (ORDER BY score)" for q in monitoring.SCORE_QUANTILES)
    expected = con.sql(f"SELECT {exact} FROM scores_in").fetchall()[0]
    assert got == expected
    assert np.allclose(got, np.quantile(scores["score"], monitoring.SCORE_QUANTILES), rtol=0, atol=1e-12)
