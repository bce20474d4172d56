"""The offer model without Dagster: the rule against the recipe's own SQL, the exact coverage
analysis, rules validation, and the point-in-time customer join against brute force."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pandas as pd
import pytest

from nbp_assets.contract.validation import ContractViolation
from nbp_assets.offers.model import changed_on_replay, lookup, unaccounted, version_at_event
from nbp_assets.offers.rules import assign, coverage, evaluate, load_rules, rules_from_frame

RECIPE_CASE = """
CASE
    WHEN ct.INCOME > 100000 AND ct.FICO < 700 AND cask.PROPENSITY_TO_BUY < 0.9 THEN 1
    WHEN ct.INCOME < 50000 AND cask.PROPENSITY_TO_BUY < 0.9 THEN 2
    WHEN ct.INCOME >= 50000 AND ct.FICO >= 600 AND cask.PROPENSITY_TO_BUY < 0.9 THEN 3
    WHEN ct.INCOME > 100000 AND ct.FICO >= 700 AND cask.PROPENSITY_TO_BUY < 0.9 THEN 4
    ELSE 5
END"""
RULES = load_rules()
CHAINED = re.compile(r"(\S+) (<=?) (\w+) (<=?) (\S+)")  # the report's "a <= X <= b", to split for SQL
OFFER_IDS = [1, 2, 3, 4, 5]


def inputs_grid(seed: int = 3, n: int = 20_000) -> pd.DataFrame:
    """Every bound, its neighbours and NULL, crossed; plus random values."""
    incomes = [None, 0, 1, 49_999, 50_000, 50_001, 99_999, 100_000, 100_001, 10**7]
    ficos = [None, 300, 599, 600, 601, 699, 700, 701, 850]
    props = [0.0, 0.5, 0.8999999, 0.9, 0.9000001, 1.0]
    grid = pd.MultiIndex.from_product([incomes, ficos, props], names=["income", "fico", "propensity"]).to_frame(
        index=False
    )
    rng = np.random.default_rng(seed)
    rand = pd.DataFrame(
        {
            "income": np.where(rng.random(n) < 0.05, np.nan, rng.integers(0, 250_000, n)),
            "fico": np.where(rng.random(n) < 0.05, np.nan, rng.integers(300, 851, n)),
            "propensity": rng.random(n),
        }
    )
    df = pd.concat([grid, rand], ignore_index=True)
    return df.astype({"income": "Int64", "fico": "Int64", "propensity": "float64"})


def sql_case(df: pd.DataFrame, expression: str) -> np.ndarray:
    """The recipe's CASE (columns qualified ct. and cask.) evaluated by DuckDB on each row."""
    with duckdb.connect() as con:
        con.register("inputs", df.reset_index())
        return (
            con.sql(
                f"SELECT {expression} AS v FROM (SELECT index, income AS INCOME, fico AS FICO FROM inputs) AS ct "
                f"JOIN (SELECT index, propensity AS PROPENSITY_TO_BUY FROM inputs) AS cask USING (index) ORDER BY index"
            )
            .df()["v"]
            .to_numpy()
        )


def sql_condition(df: pd.DataFrame, condition: str) -> np.ndarray:
    """A condition on INCOME, FICO, PROPENSITY_TO_BUY evaluated by DuckDB (NULL counts as false)."""
    with duckdb.connect() as con:
        con.register("inputs", df.reset_index())
        return (
            con.sql(
                f"SELECT COALESCE({condition}, FALSE) AS v FROM (SELECT index, income AS INCOME, fico AS FICO, "
                f"propensity AS PROPENSITY_TO_BUY FROM inputs) ORDER BY index"
            )
            .df()["v"]
            .to_numpy(bool)
        )


def values(df: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "income": df["income"].astype("Float64").to_numpy("float64", na_value=np.nan),
        "fico": df["fico"].astype("Float64").to_numpy("float64", na_value=np.nan),
        "propensity": df["propensity"].to_numpy("float64"),
    }


def test_rule_gives_what_the_recipes_case_gives_in_sql():
    df = inputs_grid()
    offer, priority = evaluate(RULES.version(1), values(df))
    np.testing.assert_array_equal(offer, sql_case(df, RECIPE_CASE).astype("int64"))
    assert set(priority) <= {1, 2, 3, 5}  # rule 4 never wins


@pytest.mark.parametrize(
    ("income", "fico", "propensity", "offer"),
    [
        (403646, 465, 0.4, 1),  # the recipe's customer 1
        (None, 650, 0.5, 5),  # missing income: no WHEN holds
        (40_000, None, 0.5, 2),  # missing FICO, but WHEN 2 does not look at it (SQL semantics)
        (75_000, None, 0.5, 5),  # missing FICO where WHEN 3 needs it
        (100_000, 650, 0.5, 3),  # INCOME > 100000 is strict
        (75_000, 599, 0.5, 5),  # the gap no WHEN covers
        (150_000, 720, 0.5, 3),  # rule 4's input, taken by rule 3
        (150_000, 650, 0.9, 5),  # PROPENSITY_TO_BUY < 0.9 is strict
    ],
)
def test_rule_examples(income, fico, propensity, offer):
    df = pd.DataFrame(
        {"income": pd.array([income], "Int64"), "fico": pd.array([fico], "Int64"), "propensity": [propensity]}
    )
    assert evaluate(RULES.version(1), values(df))[0].tolist() == [offer]


def test_coverage_of_the_recipes_rule_is_exact():
    report = coverage(RULES.version(1), OFFER_IDS)
    assert report.unreachable_offers == [4]
    assert report.unreachable_rules.to_dict("records") == [{"priority": 4, "offer_id": 4, "shadowed_by": [3]}]
    assert report.uncovered == [
        "PROPENSITY_TO_BUY >= 0.9",
        "INCOME IS NULL AND PROPENSITY_TO_BUY < 0.9",
        "50000 <= INCOME <= 100000 AND FICO < 600 AND PROPENSITY_TO_BUY < 0.9",
        "INCOME >= 50000 AND FICO IS NULL AND PROPENSITY_TO_BUY < 0.9",
    ]
    # The reported regions are exactly the inputs the recipe's CASE sends to its ELSE.
    as_sql = " OR ".join("(" + CHAINED.sub(r"\1 \2 \3 AND \3 \4 \5", u) + ")" for u in report.uncovered)
    df = inputs_grid(seed=5)
    np.testing.assert_array_equal(sql_condition(df, as_sql), sql_case(df, RECIPE_CASE).astype("int64") == 5)


def rules_table(rows: list[dict], version: int = 1, valid_from: str = "2000-01-01") -> pd.DataFrame:
    bounds = {f"{d}_{op}": np.nan for d in ("income", "fico", "propensity") for op in ("gt", "ge", "lt", "le")}
    return pd.DataFrame(
        [
            {
                "rules_version": version,
                "valid_from": valid_from,
                "priority": i + 1,
                "is_else": False,
                "description": None,
                **bounds,
                **row,
            }
            for i, row in enumerate(rows)
        ]
    )


def test_a_catch_all_makes_the_else_unreachable_and_leaves_nothing_uncovered():
    rules = rules_from_frame(
        rules_table(
            [
                {"offer_id": 1, "propensity_lt": 0.5},
                {"offer_id": 2, "propensity_ge": 0.5},
                {"offer_id": 3, "is_else": True},
            ]
        )
    )
    report = coverage(rules.version(1), [1, 2, 3])
    assert report.unreachable_offers == [3] and report.uncovered == [] and report.unreachable_rules.empty


def test_a_rule_no_integer_can_satisfy_is_unreachable():
    rules = rules_from_frame(
        rules_table(
            [
                {"offer_id": 1, "income_gt": 5, "income_lt": 6},  # no whole income between 5 and 6
                {"offer_id": 2, "is_else": True},
            ]
        )
    )
    report = coverage(rules.version(1), [1, 2])
    assert report.unreachable_rules.to_dict("records") == [{"priority": 1, "offer_id": 1, "shadowed_by": []}]
    assert report.unreachable_offers == [1] and report.uncovered == ["every input"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d.assign(is_else=True), "exactly one ELSE"),
        (lambda d: d.assign(priority=d["priority"].replace({5: 0, 1: 5}).replace({0: 1})), "highest priority"),
        (lambda d: d.assign(income_gt=d["income_gt"].fillna(7.0)), "takes no bounds"),
        (lambda d: d.assign(income_ge=d["income_gt"]), "set income_gt or income_ge, not both"),
        (lambda d: d.assign(offer_id=d["offer_id"].replace({4: 9})), "offer_id must exist in offers"),
    ],
)
def test_invalid_rules_are_rejected_with_the_reason(change, fragment):
    with pytest.raises(ContractViolation, match=fragment):
        rules_from_frame(
            change(pd.read_csv("nbp_assets/offers/default_offer_rules.csv")), offer_ids=pd.Series(OFFER_IDS)
        )


def test_a_later_version_must_start_later():
    recipe = pd.read_csv("nbp_assets/offers/default_offer_rules.csv")
    with pytest.raises(ContractViolation, match="start strictly later"):
        rules_from_frame(pd.concat([recipe, recipe.assign(rules_version=2)]))


def test_each_event_uses_the_rules_version_in_force_at_its_time():
    recipe = pd.read_csv("nbp_assets/offers/default_offer_rules.csv")
    v2 = recipe.assign(rules_version=2, valid_from="2026-12-01", offer_id=recipe["offer_id"].replace({1: 3}))
    rules = rules_from_frame(pd.concat([recipe.assign(valid_from="2026-01-01"), v2]))
    times = pd.Series(
        pd.to_datetime(["2025-06-01", "2026-11-30 23:59:59", "2026-12-01", "2027-01-01"], format="ISO8601")
    )
    one = pd.Series(pd.array([150_000] * 4, "Int64"))
    out = assign(rules, times, one, pd.Series(pd.array([650] * 4, "Int64")), pd.Series([0.5] * 4))
    assert out["RULES_VERSION"].tolist() == [1, 1, 2, 2]  # before the first version: the first
    assert out["OFFER_ID"].tolist() == [1, 1, 3, 3]


def test_point_in_time_join_matches_brute_force():
    rng = np.random.default_rng(11)
    parties = np.array([f"P{i}" for i in range(300)], dtype=object)
    starts = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 365, 900), unit="D")
    versions = pd.DataFrame({"party_id": rng.choice(parties[:250], 900), "valid_from": starts})
    versions = versions.drop_duplicates(["party_id", "valid_from"]).reset_index(drop=True)
    events = pd.DataFrame(
        {
            "party_id": rng.choice(parties, 5000),
            "event_time": pd.Timestamp("2025-12-01") + pd.to_timedelta(rng.integers(0, 420 * 86400, 5000), unit="s"),
        }
    )
    events.loc[:9, "event_time"] = versions["valid_from"].iloc[:10].to_numpy()  # exactly at a version start
    events.loc[:9, "party_id"] = versions["party_id"].iloc[:10].to_numpy()

    got = version_at_event(events, versions)

    pairs = events.reset_index().merge(versions.reset_index(), on="party_id", suffixes=("_e", "_v"))
    started = pairs[pairs["valid_from"] <= pairs["event_time"]].sort_values("valid_from")
    latest = started.groupby("index_e")["index_v"].last()
    first = pairs.sort_values("valid_from").groupby("index_e")["index_v"].first()
    expected = latest.reindex(events.index).fillna(first.reindex(events.index)).fillna(-1).astype("int64")
    np.testing.assert_array_equal(got, expected.to_numpy())
    assert (got == -1).sum() == (~events["party_id"].isin(versions["party_id"])).sum() > 0


def test_lookup_returns_what_the_inner_join_would_drop():
    nbo = pd.DataFrame(
        {
            "OFFER_ID": pd.array([1, 9], "Int64"),
            "ACTIVITY_ID": pd.array([1, 2], "Int64"),
            "CUSTOMER_ID": ["1", "2"],
            "PROPENSITY_TO_BUY": [0.1, 0.2],
            "ACTIVITY_TYPE": ["a", "b"],
            "INCOME": pd.array([1, None], "Int64"),
            "FICO": pd.array([None, 700], "Int64"),
        }
    )
    offers = pd.DataFrame({"offer_id": [1, 2], "offer_name": ["x", "y"], "offer_url": ["u", "v"]})
    rows, missing = lookup(nbo, offers)
    assert rows[["ACTIVITY_ID", "OFFER_NAME", "OFFER_URL"]].values.tolist() == [[1, "x", "u"]]
    assert missing["ACTIVITY_ID"].tolist() == [2]


def test_unaccounted_names_each_way_a_batch_can_go_wrong():
    offered = pd.DataFrame({"ACTIVITY_ID": [1, 2, 2]})
    bad = unaccounted(
        claimed=pd.Series([1, 2, 3, 4]), offered=offered, pending=pd.Series([4]), previous=pd.Series([1, 5])
    )
    assert sorted(map(tuple, bad.values.tolist())) == [
        (2, "offered twice"),
        (2, "offered twice"),
        (3, "taken by the batch but neither offered nor pending"),
        (5, "offered by an earlier run, lost now"),
    ]
    assert unaccounted(pd.Series([1, 2]), pd.DataFrame({"ACTIVITY_ID": [1]}), pd.Series([2]), pd.Series([1])).empty


def test_changed_on_replay_counts_events_whose_offer_or_rules_version_moved():
    before = pd.DataFrame({"ACTIVITY_ID": [1, 2, 3], "OFFER_ID": [1, 2, 3], "RULES_VERSION": [1, 1, 1]})
    now = pd.DataFrame(
        {
            "ACTIVITY_ID": pd.array([1, 2, 3], "Int64"),
            "OFFER_ID": pd.array([1, 5, 3], "Int64"),
            "RULES_VERSION": pd.array([1, 1, 2], "Int64"),
        }
    )
    assert changed_on_replay(before, now) == 2
    assert changed_on_replay(before.iloc[:0], now) == 0
