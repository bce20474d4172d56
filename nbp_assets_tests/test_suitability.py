"""The suitability rule (CON-006, Consumer Duty): products that add credit risk are kept away
from customers in financial difficulty, and a blocking check proves none is published."""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd
import pytest

from nbp_assets.contract.validation import ContractViolation
from nbp_assets.core.partitions import Week
from nbp_assets.core.warehouse import HISTORY_TABLE, SOURCE_SCHEMA, DuckDBWarehouse
from nbp_assets.sources.synthetic import generate
from nbp_assets.weekly import assets as engine
from nbp_assets.weekly import checks
from nbp_assets.weekly.assets import build_engine_assets
from nbp_assets.weekly.local import rank_week
from nbp_assets.weekly.suitability import suppressed_published
from nbp_assets.weekly.weights import HEALTH_THRESHOLD, WHEN_UNKNOWN, load_weights, weights_from_frame
from nbp_assets_tests import reference_model as ref
from nbp_assets_tests.test_ranking_model import EVALUATED_AT, make_inputs

WEIGHTS = load_weights()
WEEK = Week.from_key("2026-11-09")

PRODUCTS = pd.DataFrame(
    {
        "product_id": ["LOAN", "CARD", "SAV"],
        "product_class": ["LENDING", "CARD", "SAVINGS"],
        "lifecycle_stage": ["MATURE"] * 3,
        "is_retention": [False, False, False],
        "spend_category": [None, None, None],
        "target_rote": [0.30, 0.30, 0.30],  # every product lifts (rote_uplift), so every score is > 0
    }
)


def _without_rule(weights=WEIGHTS):
    long = weights.as_long()
    return weights_from_frame(long[~long["signal"].isin(["suitability", HEALTH_THRESHOLD, WHEN_UNKNOWN])])


def _fail_open(weights=WEIGHTS):
    """The same rules, with an unknown health treated as suitable (the rule before issue 22)."""
    long = weights.as_long()
    long.loc[long["signal"] == WHEN_UNKNOWN, "weight"] = 0.0
    return weights_from_frame(long)


def _scores(health, weights=WEIGHTS, party="P1"):
    ranked, scored, report = rank_week(make_inputs(products=PRODUCTS, health=health, rote=0.0), weights, EVALUATED_AT)
    return ranked, scored[scored["party_id"] == party].set_index("product_id"), report


def test_lending_is_suppressed_below_the_threshold_and_cards_down_weighted():
    healthy_ranked, healthy, _ = _scores(40.0)  # on the threshold: not below it
    ranked, poor, report = _scores(39.9)
    assert set(healthy_ranked["product_id"]) == {"LOAN", "CARD", "SAV"}
    assert "LOAN" not in set(ranked["product_id"]) and "LOAN" not in poor.index
    assert report.pairs_suppressed_unsuitable == 1 and report.pairs_down_weighted_unsuitable == 1
    assert poor.at["CARD", "suitability"] == 1.0 and healthy.at["CARD", "suitability"] == 0.0
    assert poor.at["CARD", "score"] == pytest.approx(healthy.at["CARD", "score"] * (1 - 0.5), abs=1e-6)
    assert poor.at["SAV", "score"] == healthy.at["SAV", "score"]  # savings add no credit risk
    assert poor.at["SAV", "financial_health"] == 0.399


def test_a_suppressed_product_stays_out_even_when_nothing_else_is_eligible():
    inputs = make_inputs(products=PRODUCTS, eligible=["LOAN"], health=10.0, rote=0.0)
    ranked, _, report = rank_week(inputs, WEIGHTS, EVALUATED_AT)
    assert ranked.empty and report.pairs_suppressed_unsuitable == 1
    # a score of 0 would not do: with nothing else eligible, a 0 still ranks first
    ranked, _, _ = rank_week(inputs, _without_rule(), EVALUATED_AT)
    assert ranked["product_id"].tolist() == ["LOAN"]


def test_a_customer_without_a_health_score_is_not_offered_lending_unless_the_class_fails_open():
    # issue 22.3: suitability fails closed. P2 has no MOD-040 row this week, P3 a NULL score.
    inputs = make_inputs(products=PRODUCTS, health=[70.0, 70.0, None], rote=0.0, parties=["P1", "P2", "P3"])
    inputs.churn = inputs.churn[inputs.churn["party_id"] != "P2"]
    ranked, scored, report = rank_week(inputs, WEIGHTS, EVALUATED_AT)
    for party in ("P2", "P3"):
        # lending is withheld; the card (a down-weighting rule, fails open by default) and
        # savings (no rule) stay, undiscounted
        assert set(ranked.loc[ranked["party_id"] == party, "product_id"]) == {"CARD", "SAV"}
        mine = scored[scored["party_id"] == party].set_index("product_id")
        assert mine["financial_health"].isna().all() and (mine["suitability"] == 0.0).all()
    assert set(ranked.loc[ranked["party_id"] == "P1", "product_id"]) == {"LOAN", "CARD", "SAV"}
    assert (report.pairs_suppressed_unsuitable, report.pairs_withheld_unknown_health) == (2, 2)
    assert report.parties_unknown_health_withheld == 2
    # configured per class: LENDING's suitability_when_unknown 0 opens it again
    ranked, _, report = rank_week(inputs, _fail_open(), EVALUATED_AT)
    assert set(ranked.loc[ranked["party_id"] == "P2", "product_id"]) == {"LOAN", "CARD", "SAV"}
    assert report.pairs_suppressed_unsuitable == 0 and report.parties_unknown_health_withheld == 0


@pytest.mark.parametrize(("score", "withheld"), [(39.99995, True), (39.9999996, True), (40.0, False)])
def test_the_threshold_is_compared_on_the_health_as_delivered(score, withheld):
    # issue 22.3: 39.99995 / 100 rounds to 0.400000 at 6 dp, and is below 0.40 all the same
    ranked, mine, report = _scores(score)
    assert ("LOAN" not in set(ranked["product_id"])) is withheld
    assert report.pairs_suppressed_unsuitable == int(withheld)
    assert mine.at["CARD", "suitability"] == float(withheld)  # the down-weighting rule, same comparison
    assert mine.at["CARD", "financial_health"] == 0.4  # the explanation keeps the 6 dp value


def test_the_sql_rule_equals_the_reference_rule():
    inputs = make_inputs(
        products=PRODUCTS, parties=[f"P{i}" for i in range(6)], rote=0.0, health=[0.0, 39.9, 40.0, 40.1, 99.0, 100.0]
    )
    for weights in (WEIGHTS, _without_rule()):
        want, _, want_report = ref.rank_week(inputs, weights, EVALUATED_AT)
        got, _, got_report = rank_week(inputs, weights, EVALUATED_AT)
        pd.testing.assert_frame_equal(
            got.reset_index(drop=True), want.reset_index(drop=True), check_exact=True, check_dtype=False
        )
        assert (got_report.pairs_suppressed_unsuitable, got_report.pairs_down_weighted_unsuitable) == (
            want_report.pairs_suppressed_unsuitable,
            want_report.pairs_down_weighted_unsuitable,
        )


def test_the_rule_is_part_of_model_version_and_a_configuration_without_it_keeps_nbp_1_0s():
    inert = _without_rule()
    assert not inert.has_suitability_rule and WEIGHTS.has_suitability_rule
    assert inert.model_version != WEIGHTS.model_version
    assert inert.signals_version == "nbp-1.0" and WEIGHTS.signals_version.startswith("nbp-1.0+s")
    # nbp-1.0's digest (the weights of the eight... seven signals it had) is kept without a rule:
    # the version published before the rule existed for these weights
    assert inert.model_version == "nbp-1.0+w681f5595e76d"
    # issue 22: the default rule fails closed and compares unrounded, a new version; failing
    # open is a version of its own (neither is nbp-1.0+we33c89453c99, the rule before issue 22)
    assert WEIGHTS.model_version == "nbp-1.0+waef906c313da"
    assert _fail_open().model_version not in (WEIGHTS.model_version, "nbp-1.0+we33c89453c99")
    assert _fail_open().signals_version != WEIGHTS.signals_version
    long = WEIGHTS.as_long()
    stricter = long.copy()
    stricter.loc[(stricter["product_class"] == "CARD") & (stricter["signal"] == HEALTH_THRESHOLD), "weight"] = 0.45
    assert weights_from_frame(stricter).model_version != WEIGHTS.model_version
    assert weights_from_frame(stricter).signals_version != WEIGHTS.signals_version


def test_half_a_rule_is_rejected_with_the_class_named():
    long = WEIGHTS.as_long()
    long = long[~((long["product_class"] == "LENDING") & (long["signal"] == HEALTH_THRESHOLD))]
    with pytest.raises(ContractViolation, match=r"(?s)suitability.*LENDING"):
        weights_from_frame(long)


def test_the_check_finds_a_suppressed_pair_published_and_nothing_else():
    con = duckdb.connect()
    con.register("products_in", PRODUCTS)
    con.register(
        "health_in", pd.DataFrame({"party_id": ["P1", "P2", "P3"], "financial_health_score": [39.9, 40.0, 10.0]})
    )
    con.register(
        "ranked_in",
        pd.DataFrame(
            {
                "party_id": ["P1", "P1", "P2", "P3", "P4"],
                "rank": [1, 2, 1, 1, 1],
                "product_id": ["LOAN", "CARD", "LOAN", "SAV", "LOAN"],
            }
        ),
    )
    bad = con.sql(suppressed_published("ranked_in", "health_in", "products_in", WEIGHTS) + " ORDER BY 1").df()
    # P1's loan (39.9 < 40) and P4's (no MOD-040 row: fails closed): P1's card is down-weighted,
    # not suppressed; P2 sits on the threshold; P3 got savings
    assert bad[["party_id", "product_id"]].values.tolist() == [["P1", "LOAN"], ["P4", "LOAN"]]
    fail_open = con.sql(suppressed_published("ranked_in", "health_in", "products_in", _fail_open())).df()
    assert fail_open[["party_id", "product_id"]].values.tolist() == [["P1", "LOAN"]]
    assert con.sql(suppressed_published("ranked_in", "health_in", "products_in", _without_rule())).df().empty


def _warehouse(tmp_path, tables) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"))
    for name, df in tables.items():
        warehouse.replace_table(f"{SOURCE_SCHEMA}.{name}", df)
    return warehouse


def _materialize(warehouse, weights=WEIGHTS):
    assets = [a for a in build_engine_assets(weights) if a.key.path[-1] != "nbp_current"]
    return dg.materialize(assets, partition_key=WEEK.key, resources={"warehouse": warehouse}, raise_on_error=False)


def test_the_week_counts_the_pairs_the_rule_touched_and_passes_the_check(tmp_path):
    tables = generate(800, 11, end_week=WEEK.start, history_weeks=1)
    result = _materialize(_warehouse(tmp_path, tables))
    assert result.success
    meta = {k: v.value for k, v in result.asset_materializations_for_node("signals")[0].metadata.items()}
    assert meta["pairs_suppressed_unsuitable"] > 0 and meta["pairs_down_weighted_unsuitable"] > 0
    evaluations = result.get_asset_check_evaluations()
    suitability = [e for e in evaluations if e.check_name == checks.SUITABILITY]
    assert len(suitability) == 1 and suitability[0].passed


def test_a_model_that_publishes_a_suppressed_pair_fails_the_check_and_writes_nothing(tmp_path, monkeypatch):
    tables = generate(800, 11, end_week=WEEK.start, history_weeks=1)
    warehouse = _warehouse(tmp_path, tables)
    # the bug: the signals step forgets the rule (the check reads MOD-040 and the rule itself)
    monkeypatch.setattr(engine, "rules_relation", lambda weights: None)
    result = _materialize(warehouse)
    assert not result.success
    evaluations = result.get_asset_check_evaluations()
    failed = [e for e in evaluations if not e.passed]
    assert [e.check_name for e in failed] == [checks.SUITABILITY]
    assert failed[0].metadata["failing_rows"].value > 0
    assert not warehouse.table_exists(HISTORY_TABLE) or warehouse.scalar(f"SELECT count(*) FROM {HISTORY_TABLE}") == 0


def test_with_the_default_weights_only_customers_in_difficulty_see_a_change():
    tables = generate(1500, 3, end_week=WEEK.start, history_weeks=1)
    with_rule = ref.reference_week(tables, WEEK.evaluation_date, WEIGHTS).drop(columns="model_version")
    without = ref.reference_week(tables, WEEK.evaluation_date, _without_rule()).drop(columns="model_version")
    health = tables["churn_health"]
    health = health[
        health["as_of_date"]
        == health.loc[health["as_of_date"] < pd.Timestamp(WEEK.evaluation_date), "as_of_date"].max()
    ]
    # in difficulty, or unknown this week (fails closed)
    poor = set(health.loc[health["financial_health_score"] / 100 < 0.40, "party_id"])
    poor |= set(tables["customers"]["party_id"]) - set(health["party_id"])
    changed = set(pd.concat([with_rule, without]).drop_duplicates(keep=False)["party_id"])
    assert changed and changed <= poor
    key = ["party_id", "rank"]
    pd.testing.assert_frame_equal(
        with_rule[~with_rule["party_id"].isin(poor)].sort_values(key).reset_index(drop=True),
        without[~without["party_id"].isin(poor)].sort_values(key).reset_index(drop=True),
    )
