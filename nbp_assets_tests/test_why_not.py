"""Why not (issue 22.2, 22.3): every pair the suitability rule withholds is recorded with its
reason in nbp_work.withheld, bounded by the withheld pairs; the gate and holdings exclusions
are counted per product; suitability fails closed on an unknown health, configurable per
class; `show` lists what was withheld from a customer; a bad setting is refused."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from nbp_assets.contract.assets import WITHHELD_RULES
from nbp_assets.contract.tables import WITHHELD
from nbp_assets.contract.validation import ContractViolation
from nbp_assets.core.partitions import Week
from nbp_assets.core.warehouse import SOURCE_SCHEMA, DuckDBWarehouse
from nbp_assets.sources.synthetic import generate
from nbp_assets.weekly import local
from nbp_assets.weekly.assets import build_engine_assets
from nbp_assets.weekly.explain import week_withheld, withheld_lines
from nbp_assets.weekly.signals import WITHHELD_REASONS
from nbp_assets.weekly.weights import HEALTH_THRESHOLD, WHEN_UNKNOWN, load_weights, weights_from_frame
from nbp_assets_tests import reference_model as ref
from nbp_assets_tests.test_ranking_model import make_inputs
from nbp_assets_tests.test_suitability import PRODUCTS, _fail_open

WEIGHTS = load_weights()
WEEK = Week.from_key("2026-11-09")


def test_the_withheld_table_has_exactly_the_withheld_pairs_with_their_reasons():
    parties = ["P1", "P2", "P3", "P4", "P5", "P6"]
    inputs = make_inputs(products=PRODUCTS, parties=parties, rote=0.0, health=[39.99995, 70.0, 40.0, 10.0, 10.0, 5.0])
    inputs.churn = inputs.churn[inputs.churn["party_id"] != "P2"]  # P2: no MOD-040 row this week
    inputs.holdings = pd.DataFrame({"party_id": ["P4"], "product_id": ["LOAN"]})  # held: not withheld
    inputs.candidates = inputs.candidates[
        ~((inputs.candidates["party_id"] == "P5") & (inputs.candidates["product_id"] == "LOAN"))
    ]  # the gate dropped P5's loan: not withheld either
    got = local.withheld_pairs(inputs, WEIGHTS)
    want = pd.DataFrame(
        {
            "party_id": ["P1", "P2", "P6"],
            "product_id": ["LOAN"] * 3,
            "product_class": ["LENDING"] * 3,
            "rule": [HEALTH_THRESHOLD, WHEN_UNKNOWN, HEALTH_THRESHOLD],
            "financial_health_score": [39.99995, np.nan, 5.0],
            "health_below": [0.4] * 3,
            "reason": [WITHHELD_REASONS["below"], WITHHELD_REASONS["unknown"], WITHHELD_REASONS["below"]],
        }
    )
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    # the count the run reports is the table's
    _, _, report = local.rank_week(inputs, WEIGHTS, pd.Timestamp("2026-11-16").to_pydatetime())
    assert report.pairs_suppressed_unsuitable == len(got) and report.parties_unknown_health_withheld == 1
    # failing open, P2's loan is a candidate again and leaves the record
    assert local.withheld_pairs(inputs, _fail_open())["party_id"].tolist() == ["P1", "P6"]


def test_fail_open_weights_give_the_rows_of_the_rule_before_issue_22_bit_for_bit():
    rng = np.random.default_rng(11)
    parties = [f"P{i:03d}" for i in range(300)]
    inputs = make_inputs(
        products=PRODUCTS,
        parties=parties,
        rote=rng.choice([0.0, 0.05, 0.1], len(parties)),
        health=rng.choice([20.0, 39.9, 40.0, 75.0], len(parties)),  # no score within 5e-7 below 40
        churn=rng.choice([0.0, 0.5, 1.0], len(parties)),
    )
    inputs.churn = inputs.churn.sample(frac=0.8, random_state=3)  # a fifth without a MOD-040 row
    at = pd.Timestamp("2026-11-16").to_pydatetime()
    opened = _fail_open()
    before, _, _ = ref.rank_week(inputs, opened, at, before_issue_22=True)
    got, _, _ = local.rank_week(inputs, opened, at)
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), before.reset_index(drop=True), check_exact=True, check_dtype=False
    )
    # and the default (fails closed) is the reference's new rule, and differs for the unknown
    want, _, _ = ref.rank_week(inputs, WEIGHTS, at)
    closed, _, _ = local.rank_week(inputs, WEIGHTS, at)
    pd.testing.assert_frame_equal(
        closed.drop(columns="model_version").reset_index(drop=True),
        want.drop(columns="model_version").reset_index(drop=True),
        check_exact=True,
        check_dtype=False,
    )
    unknown = set(parties) - set(inputs.churn["party_id"])
    assert not (set(closed.loc[closed["product_id"] == "LOAN", "party_id"]) & unknown)
    assert set(got.loc[got["product_id"] == "LOAN", "party_id"]) & unknown


def _week(tmp_path, tables) -> tuple[DuckDBWarehouse, dg.ExecuteInProcessResult]:
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"))
    for name, df in tables.items():
        warehouse.replace_table(f"{SOURCE_SCHEMA}.{name}", df)
    assets = [a for a in build_engine_assets(WEIGHTS) if a.key.path[-1] != "nbp_current"]
    result = dg.materialize(assets, partition_key=WEEK.key, resources={"warehouse": warehouse}, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return warehouse, result


def test_the_week_records_why_not_counts_exclusions_per_product_and_show_lists_them(tmp_path):
    tables = generate(800, 11, end_week=WEEK.start, history_weeks=1)
    # 40 active customers missing from this week's MOD-040 snapshot: their health is unknown
    active = tables["customers"].loc[tables["customers"]["status"] == "ACTIVE", "party_id"].drop_duplicates()
    health = tables["churn_health"]
    tables["churn_health"] = health[~health["party_id"].isin(active.iloc[:40])]
    warehouse, result = _week(tmp_path, tables)

    def meta(step):
        return {k: v.value for k, v in result.asset_materializations_for_node(step)[0].metadata.items()}

    signals, eligibility = meta("signals"), meta("eligibility")
    at = f"week_start = TIMESTAMP '{WEEK.start:%Y-%m-%d} 00:00:00'"
    withheld = warehouse.query(f"SELECT * FROM {WITHHELD.name} WHERE {at}")
    n = lambda sql: int(warehouse.scalar(sql))  # noqa: E731
    # every row a candidate of the gate, none of them scored: eligible = signals + withheld + held
    pairs = "(SELECT party_id, product_id FROM nbp_work.{t} WHERE " + at + ")"
    assert n(f"SELECT count(*) FROM {pairs.format(t='withheld')} w JOIN {pairs.format(t='signals')} s "
             "USING (party_id, product_id)") == 0  # fmt: skip
    assert n(f"SELECT count(*) FROM {pairs.format(t='withheld')} w JOIN {pairs.format(t='eligibility')} e "
             "USING (party_id, product_id)") == len(withheld) > 0  # fmt: skip
    held = sum(signals["excluded_as_held"].values())
    assert held == signals["pairs_dropped_already_held"] > 0
    assert (
        n(f"SELECT count(*) FROM {pairs.format(t='eligibility')} e")
        == signals["dagster/row_count"] + len(withheld) + held
    )
    # each reason is true of the week's MOD-040 snapshot
    health = tables["churn_health"]
    health = health[health["as_of_date"] == health["as_of_date"].max()].set_index("party_id")["financial_health_score"]
    below = withheld[withheld["rule"] == HEALTH_THRESHOLD]
    unknown = withheld[withheld["rule"] == WHEN_UNKNOWN]
    assert (below["financial_health_score"].to_numpy() == health.loc[below["party_id"]].to_numpy()).all()
    assert (below["financial_health_score"] / 100 < below["health_below"]).all()
    assert not set(unknown["party_id"]) & set(health.index) and unknown["financial_health_score"].isna().all()
    assert set(withheld["product_class"]) <= {"LENDING", "MORTGAGE"} and len(unknown) > 0
    # the run's metadata counts them
    assert signals["pairs_suppressed_unsuitable"] == len(withheld)
    assert signals["pairs_withheld_by_rule"] == {HEALTH_THRESHOLD: len(below), WHEN_UNKNOWN: len(unknown)}
    assert signals["parties_unknown_health_withheld"] == unknown["party_id"].nunique() > 0
    by_product = withheld.groupby(["product_id", "rule"]).size()
    assert signals["withheld_by_product"] == {
        p: {r: int(by_product.get((p, r), 0)) for r in (HEALTH_THRESHOLD, WHEN_UNKNOWN)}
        for p in sorted(set(withheld["product_id"]))
    }
    assert sum(eligibility["excluded_by_gate"].values()) > 0
    # the why-not record passed its contract check like every weekly table
    contract = [e for e in result.get_asset_check_evaluations() if e.asset_key.path[-1] == "signals"]
    assert len(contract) == 1 and contract[0].passed

    # show PARTY_ID: the "withheld this week" section
    party = unknown["party_id"].iloc[0]
    products = warehouse.query(f"SELECT product_id, product_name FROM nbp_work.products WHERE {at}")
    mine = week_withheld(warehouse, party, WEEK.start, products)
    lines = withheld_lines(mine)
    assert lines[0].startswith("  withheld this week")
    assert len(lines) == 1 + len(unknown[unknown["party_id"] == party])
    assert all(f"rule {WHEN_UNKNOWN}, MOD-040 score unknown, threshold 0.4" in line for line in lines[1:])
    assert all("(LENDING)" in line or "(MORTGAGE)" in line for line in lines[1:])
    poor = below.iloc[0]
    line = withheld_lines(week_withheld(warehouse, poor["party_id"], WEEK.start, products))[1:]
    assert any(f"rule {HEALTH_THRESHOLD}, MOD-040 score {poor['financial_health_score']:g}" in x for x in line)
    assert withheld_lines(week_withheld(warehouse, "NOBODY", WEEK.start)) == [lines[0], "    none"]


@pytest.mark.parametrize(
    ("rows", "named"),
    [
        ([("LENDING", WHEN_UNKNOWN, 0.5)], "LENDING"),  # neither 0 nor 1
        ([("SAVINGS", WHEN_UNKNOWN, 1.0)], "SAVINGS"),  # no rule to fail closed
        ([("LENDING", WHEN_UNKNOWN, 1.5)], "weight"),  # out of [0, 1]: the contract's range check
    ],
)
def test_a_bad_when_unknown_setting_is_refused_in_one_line_naming_the_class(tmp_path, rows, named):
    long = WEIGHTS.as_long()
    long = long[~long.set_index(["product_class", "signal"]).index.isin([(c, s) for c, s, _ in rows])]
    bad = pd.concat([long, pd.DataFrame(rows, columns=long.columns)], ignore_index=True)
    path = tmp_path / "weights.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(ContractViolation) as raised:
        load_weights(path)
    problems = [line for line in str(raised.value).splitlines() if line.startswith("  - ")]
    assert len(problems) == 1 and named in problems[0]
    assert str(path) in str(raised.value).splitlines()[0]


def test_the_setting_round_trips_and_the_table_names_the_rules_the_weights_use():
    opened = _fail_open()
    assert weights_from_frame(opened.as_long()).model_version == opened.model_version
    assert weights_from_frame(WEIGHTS.as_long()).model_version == WEIGHTS.model_version
    assert WITHHELD_RULES == [HEALTH_THRESHOLD, WHEN_UNKNOWN]
    assert WITHHELD.name == "nbp_work.withheld" and WITHHELD.key == ("week_start", "party_id", "product_id")
    # left out, a suppressing class fails closed; a down-weighting one does not
    long = WEIGHTS.as_long()
    implicit = weights_from_frame(long[long["signal"] != WHEN_UNKNOWN])
    assert implicit.matrix[WHEN_UNKNOWN].to_dict() == WEIGHTS.matrix[WHEN_UNKNOWN].to_dict()
    assert implicit.model_version == WEIGHTS.model_version
