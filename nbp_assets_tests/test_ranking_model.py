"""Properties of the MOD-107 ranking model: each signal moves the rank in the seed's direction.

The model under test is the warehouse SQL (nbp_assets.weekly), run on in-memory DuckDB tables."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from nbp_assets.weekly.local import compute_signals, eligible_candidates, rank_week, score_candidates
from nbp_assets.weekly.signals import WeekInputs
from nbp_assets.weekly.vocabulary import ALL_SIGNALS, NO_SIGNAL
from nbp_assets.weekly.weights import SETTINGS, load_weights, model_version, weights_from_frame

EVAL_DATE = date(2026, 11, 16)
EVALUATED_AT = datetime(2026, 11, 16)
WEIGHTS = load_weights()

# Two products of the same class that differ only where a test makes them differ.
PRODUCTS = pd.DataFrame(
    {
        "product_id": ["SAV_A", "SAV_B", "SAV_RET", "FXW", "CARD_T", "CA"],
        "product_class": ["SAVINGS", "SAVINGS", "SAVINGS", "FX_WALLET", "CARD", "CURRENT_ACCOUNT"],
        "lifecycle_stage": ["MATURE"] * 6,
        "is_retention": [False, False, True, False, False, False],
        "spend_category": [None, None, None, None, "TRAVEL", None],
        "target_rote": [0.10] * 6,
    }
)


def make_inputs(
    parties=("P1",),
    segment="MASS",
    products=PRODUCTS,
    eligible=None,
    holdings=(),
    churn=0.1,
    balance=1000.0,
    spend=1000.0,
    fx_months=0,
    top_spend=None,
    rejections=(),
    rote=0.10,
    health=70.0,
) -> WeekInputs:
    parties = list(parties)
    eligible = list(products["product_id"]) if eligible is None else eligible
    return WeekInputs(
        candidates=pd.DataFrame([(p, prod) for p in parties for prod in eligible], columns=["party_id", "product_id"]),
        customers=pd.DataFrame({"party_id": parties, "segment": segment, "jurisdiction": "GB"}),
        products=products,
        holdings=pd.DataFrame(list(holdings), columns=["party_id", "product_id"]),
        churn=pd.DataFrame({"party_id": parties, "churn_probability": churn, "financial_health_score": health}),
        behaviour=pd.DataFrame(
            {
                "party_id": parties,
                "current_account_balance": balance,
                "monthly_spend": spend,
                "fx_active_months_6m": fx_months,
                "top_spend_category": top_spend,
            }
        ),
        rejections=pd.DataFrame(list(rejections), columns=["party_id", "product_id", "outcome_at"]),
        evaluation_date=EVAL_DATE,
        rote=None if rote is None else pd.DataFrame({"party_id": parties, "customer_rote": rote}),
    )


def ranks(inputs: WeekInputs, party="P1", weights=WEIGHTS) -> dict[str, int]:
    """Full ordering of every candidate of one party (1 = best), ties by product_id."""
    signals, _ = compute_signals(inputs)
    scored = score_candidates(signals, inputs.products, weights)
    mine = scored[scored["party_id"] == party].sort_values(["score", "product_id"], ascending=[False, True])
    return {p: i + 1 for i, p in enumerate(mine["product_id"])}


def test_relationship_gap_larger_peer_gap_ranks_higher():
    peers = [f"Q{i}" for i in range(10)]
    # 8 of 10 peers hold SAV_B, 2 hold SAV_A: SAV_B is the bigger gap for P1.
    holdings = [(p, "SAV_B") for p in peers[:8]] + [(p, "SAV_A") for p in peers[:2]]
    inputs = make_inputs(parties=["P1", *peers], holdings=holdings, eligible=["SAV_A", "SAV_B"])
    assert ranks(inputs)["SAV_B"] < ranks(inputs)["SAV_A"]
    holdings = [(p, "SAV_A") for p in peers[:8]] + [(p, "SAV_B") for p in peers[:2]]
    inputs = make_inputs(parties=["P1", *peers], holdings=holdings, eligible=["SAV_A", "SAV_B"])
    assert ranks(inputs)["SAV_A"] < ranks(inputs)["SAV_B"]


def test_relationship_gap_only_counts_same_segment_peers():
    inputs = make_inputs(parties=["P1", "Q1", "Q2"], holdings=[("Q1", "SAV_B"), ("Q2", "SAV_B")])
    inputs.customers["segment"] = ["MASS", "PRIVATE", "PRIVATE"]
    signals, _ = compute_signals(inputs)
    p1 = signals[signals["party_id"] == "P1"].set_index("product_id")
    assert p1.at["SAV_B", "relationship_gap"] == 0.0
    q1 = signals[signals["party_id"] == "Q1"].set_index("product_id")
    assert q1.at["SAV_A", "relationship_gap"] == 0.0
    q2 = signals[signals["party_id"] == "Q2"].set_index("product_id")
    assert q2.at["CA", "relationship_gap"] == 0.0


def test_products_already_held_are_never_recommended():
    peers = [f"Q{i}" for i in range(5)]
    holdings = [(p, "SAV_B") for p in peers] + [("P1", "SAV_B")]
    signals, report = compute_signals(make_inputs(parties=["P1", *peers], holdings=holdings))
    assert report.pairs_already_held == 6
    assert not ((signals["party_id"] == "P1") & (signals["product_id"] == "SAV_B")).any()
    ranked, _, _ = rank_week(make_inputs(parties=["P1", *peers], holdings=holdings), WEIGHTS, EVALUATED_AT)
    assert "SAV_B" not in set(ranked["product_id"])


def test_high_churn_lifts_retention_products():
    calm = ranks(make_inputs(churn=0.0, eligible=["SAV_A", "SAV_RET"]))
    risky = ranks(make_inputs(churn=0.95, eligible=["SAV_A", "SAV_RET"]))
    assert calm["SAV_A"] < calm["SAV_RET"]  # tie broken by product_id when nothing differs
    assert risky["SAV_RET"] < risky["SAV_A"]
    signals, _ = compute_signals(make_inputs(churn=0.95))
    assert signals.set_index("product_id").at["SAV_RET", "churn_risk"] == pytest.approx(0.95)
    assert signals.set_index("product_id").at["SAV_A", "churn_risk"] == 0.0


def test_product_that_improves_rote_ranks_higher():
    products = PRODUCTS.copy()
    products.loc[products["product_id"] == "SAV_B", "target_rote"] = 0.25
    r = ranks(make_inputs(products=products, rote=0.08, eligible=["SAV_A", "SAV_B"]))
    assert r["SAV_B"] < r["SAV_A"]


def test_missing_rote_input_drops_the_signal_and_says_so():
    products = PRODUCTS.copy()
    products.loc[products["product_id"] == "SAV_B", "target_rote"] = 0.25
    signals, report = compute_signals(make_inputs(products=products, rote=None))
    assert report.dropped_signals == ["rote_uplift"]
    assert (signals["rote_uplift"] == 0.0).all()


def test_idle_cash_lifts_savings():
    products = PRODUCTS.copy()
    busy = ranks(make_inputs(balance=1_000, spend=1_000, eligible=["CARD_T", "SAV_A"]))
    idle = ranks(make_inputs(balance=20_000, spend=1_000, eligible=["CARD_T", "SAV_A"]))
    assert busy["CARD_T"] < busy["SAV_A"]
    assert idle["SAV_A"] < idle["CARD_T"]
    signals, _ = compute_signals(make_inputs(products=products, balance=20_000, spend=1_000))
    assert signals["idle_cash"].iloc[0] == 1.0


def test_regular_fx_lifts_multi_currency_wallet():
    never = ranks(make_inputs(fx_months=0, eligible=["CA", "FXW"]))
    regular = ranks(make_inputs(fx_months=6, eligible=["CA", "FXW"]))
    assert never["CA"] < never["FXW"]
    assert regular["FXW"] < regular["CA"]


def test_spend_category_lifts_matching_product():
    other = ranks(make_inputs(top_spend="HOME", eligible=["CA", "CARD_T"]))
    travel = ranks(make_inputs(top_spend="TRAVEL", eligible=["CA", "CARD_T"]))
    assert other["CA"] < other["CARD_T"]
    assert travel["CARD_T"] < travel["CA"]


@pytest.mark.parametrize("days, cooled", [(1, True), (89, True), (90, True), (91, False), (0, False)])
def test_cooling_off_window_is_90_days(days, cooled):
    rejected_on = pd.Timestamp(EVAL_DATE - timedelta(days=days)) + pd.Timedelta(hours=15)
    peers = [f"Q{i}" for i in range(4)]
    # SAV_B wins on relationship gap (4 of 4 peers) unless cooled; SAV_A has a little lift.
    holdings = [(p, "SAV_B") for p in peers] + [("Q0", "SAV_A")]
    inputs = make_inputs(
        parties=["P1", *peers],
        holdings=holdings,
        eligible=["SAV_A", "SAV_B"],
        rejections=[("P1", "SAV_B", rejected_on)],
    )
    signals, report = compute_signals(inputs)
    p1 = signals[signals["party_id"] == "P1"].set_index("product_id")
    assert p1.at["SAV_B", "cooling_off"] == (1.0 if cooled else 0.0)
    assert report.pairs_in_cooling_off == (1 if cooled else 0)
    r = ranks(inputs)
    assert (r["SAV_A"] < r["SAV_B"]) is cooled


@pytest.mark.parametrize("stage", ["SUNSET", "UNDER_CAPACITY"])
def test_sunset_and_under_capacity_rank_lower(stage):
    peers = [f"Q{i}" for i in range(4)]
    # SAV_B: 4 of 4 peers hold it; SAV_A: 3 of 4. Unpenalised, SAV_B leads.
    holdings = [(p, "SAV_B") for p in peers] + [(p, "SAV_A") for p in peers[:3]]
    base = make_inputs(parties=["P1", *peers], holdings=holdings, eligible=["SAV_A", "SAV_B"])
    assert ranks(base)["SAV_B"] < ranks(base)["SAV_A"]
    products = PRODUCTS.copy()
    products.loc[products["product_id"] == "SAV_B", "lifecycle_stage"] = stage
    penalised = make_inputs(parties=["P1", *peers], holdings=holdings, products=products, eligible=["SAV_A", "SAV_B"])
    assert ranks(penalised)["SAV_A"] < ranks(penalised)["SAV_B"]


def test_eligibility_gate_excludes_ineligible_and_inactive():
    eligibility = pd.DataFrame(
        {
            "party_id": ["P1", "P1", "P1", "P2", "P3"],
            "product_id": ["SAV_A", "SAV_B", "GHOST", "SAV_A", "SAV_A"],
            "eligibility_status": ["ELIGIBLE", "INELIGIBLE", "ELIGIBLE", "ELIGIBLE", "REFERRED"],
        }
    )
    customers = pd.DataFrame({"party_id": ["P1", "P2", "P3"], "status": ["ACTIVE", "DORMANT", "ACTIVE"]})
    got = eligible_candidates(eligibility, customers, PRODUCTS["product_id"])
    assert got.values.tolist() == [["P1", "SAV_A"]]


def test_ineligible_product_never_appears_even_if_it_would_win():
    peers = [f"Q{i}" for i in range(5)]
    holdings = [(p, "SAV_B") for p in peers]
    inputs = make_inputs(parties=["P1", *peers], holdings=holdings)
    control, _, _ = rank_week(inputs, WEIGHTS, EVALUATED_AT)
    p1 = control[control["party_id"] == "P1"]
    assert p1.loc[p1["rank"] == 1, "product_id"].item() == "SAV_B"  # it would win
    inputs.candidates = inputs.candidates[
        ~((inputs.candidates["party_id"] == "P1") & (inputs.candidates["product_id"] == "SAV_B"))
    ]
    ranked, _, _ = rank_week(inputs, WEIGHTS, EVALUATED_AT)
    p1 = ranked[ranked["party_id"] == "P1"]
    assert "SAV_B" not in set(p1["product_id"])
    assert p1["rank"].tolist() == [1, 2, 3]


def test_top3_shape_ranks_and_versions():
    inputs = make_inputs(parties=["P1", "P2"], churn=0.5, fx_months=3, balance=9000.0)
    ranked, _, _ = rank_week(inputs, WEIGHTS, EVALUATED_AT)
    assert list(ranked.columns) == [
        "party_id",
        "jurisdiction",
        "rank",
        "product_id",
        "score",
        "primary_signal",
        "model_version",
        "evaluated_at",
    ]
    assert ranked.groupby("party_id")["rank"].apply(list).tolist() == [[1, 2, 3], [1, 2, 3]]
    for _, grp in ranked.groupby("party_id"):
        assert grp["score"].is_monotonic_decreasing
    assert ranked["score"].between(0, 1).all()
    assert (ranked["score"] == ranked["score"].round(6)).all()
    assert (ranked["model_version"] == WEIGHTS.model_version).all()
    assert (ranked["evaluated_at"] == pd.Timestamp(EVALUATED_AT)).all()


def test_fewer_than_three_eligible_gives_fewer_rows():
    inputs = make_inputs(parties=["P1"], eligible=["SAV_A", "FXW"])
    ranked, _, _ = rank_week(inputs, WEIGHTS, EVALUATED_AT)
    assert ranked["rank"].tolist() == [1, 2]
    inputs = make_inputs(parties=["P1"], eligible=[])
    ranked, _, _ = rank_week(inputs, WEIGHTS, EVALUATED_AT)
    assert ranked.empty


def test_ties_broken_by_product_id_and_output_is_deterministic():
    products = PRODUCTS.copy()
    products["product_id"] = ["Z_SAV", "A_SAV", "M_SAV", "FXW", "CARD_T", "CA"]
    inputs = make_inputs(products=products, eligible=["Z_SAV", "A_SAV", "M_SAV"], churn=0.0)
    ranked, _, _ = rank_week(inputs, WEIGHTS, EVALUATED_AT)
    assert ranked["product_id"].tolist() == ["A_SAV", "M_SAV", "Z_SAV"]
    assert (ranked["primary_signal"] == NO_SIGNAL).all()
    again, _, _ = rank_week(
        make_inputs(products=products, eligible=["Z_SAV", "A_SAV", "M_SAV"], churn=0.0), WEIGHTS, EVALUATED_AT
    )
    pd.testing.assert_frame_equal(ranked, again)


def test_primary_signal_is_the_largest_contribution():
    ranked, _, _ = rank_week(make_inputs(eligible=["FXW"], fx_months=6), WEIGHTS, EVALUATED_AT)
    assert ranked["primary_signal"].tolist() == ["regular_fx"]
    ranked, _, _ = rank_week(make_inputs(eligible=["SAV_A"], balance=50_000, spend=1_000), WEIGHTS, EVALUATED_AT)
    assert ranked["primary_signal"].tolist() == ["idle_cash"]


def test_model_version_changes_with_any_weight_and_not_with_order():
    long = WEIGHTS.as_long()
    same = weights_from_frame(long.sample(frac=1.0, random_state=1))
    assert same.model_version == WEIGHTS.model_version
    changed = long.copy()
    cooling = changed.index[changed["signal"] == "cooling_off"][0]
    changed.loc[cooling, "weight"] -= 0.01
    assert weights_from_frame(changed).model_version != WEIGHTS.model_version
    assert model_version(WEIGHTS.matrix).startswith("nbp-")
    assert set(WEIGHTS.matrix.columns) == set(SETTINGS)  # the signals' weights and the suitability threshold


def test_weights_over_one_are_rejected_with_the_class_named():
    long = WEIGHTS.as_long()
    long.loc[(long["product_class"] == "CARD") & (long["signal"] == "relationship_gap"), "weight"] = 0.9
    with pytest.raises(ValueError, match=r"(?s)weights.*weight.*CARD"):
        weights_from_frame(long)


def test_duckdb_top_n_is_snowflakes_window_row_for_row():
    """DuckDB ranks by a packed key and a top-n aggregate, Snowflake by a window: on scores
    full of ties (score, and primary_signal) both give the same rows, bit for bit."""
    import duckdb
    import numpy as np

    from nbp_assets.weekly.ranking import top_n_sql
    from nbp_assets.weekly.vocabulary import POSITIVE_SIGNALS

    rng = np.random.default_rng(11)
    n = 20_000
    scores = pd.DataFrame(
        {
            "party_id": [f"P{i:05d}" for i in rng.integers(0, 3_000, n)],
            "product_id": [f"PR{i:03d}" for i in rng.integers(0, 40, n)],
            # few distinct scores, so many ties; 0 and 1 included
            "score": np.round(rng.choice([0.0, 1.0, 0.25, 0.5, 0.123457, 0.999999, 1e-06], n), 6),
            "primary_signal": rng.choice([*POSITIVE_SIGNALS, NO_SIGNAL], n),
        }
    ).drop_duplicates(["party_id", "product_id"])
    customers = pd.DataFrame({"party_id": scores["party_id"].unique(), "jurisdiction": "GB"})
    con = duckdb.connect()
    con.register("scores_in", scores)
    con.register("customers_in", customers)

    def ranked(dialect: str) -> pd.DataFrame:
        sql = top_n_sql("scores_in", "customers_in", "v1", EVALUATED_AT, dialect=dialect)
        return con.sql(f"SELECT * FROM ({sql}) q ORDER BY party_id, rank").df()

    keyed, window = ranked("duckdb"), ranked("snowflake")
    assert len(keyed) > 3 * 2_000 and keyed["score"].nunique() > 3
    pd.testing.assert_frame_equal(keyed, window, check_exact=True)


def test_duckdb_top_n_refuses_an_unknown_primary_signal_instead_of_dropping_the_row():
    import duckdb

    from nbp_assets.weekly.ranking import top_n_sql

    con = duckdb.connect()
    con.register(
        "scores_in",
        pd.DataFrame({"party_id": ["P1"], "product_id": ["A"], "score": [0.5], "primary_signal": ["gut_feeling"]}),
    )
    con.register("customers_in", pd.DataFrame({"party_id": ["P1"], "jurisdiction": ["GB"]}))
    with pytest.raises(duckdb.Error, match="gut_feeling"):
        con.sql(top_n_sql("scores_in", "customers_in", "v1", EVALUATED_AT)).fetchall()
