"""The review report's maths, by hand: confidence intervals, minimum group size, the
eligibility / ranking split of a gap, gap history, and the configuration that drives them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nbp_assets.contract.validation import ContractViolation, validate
from nbp_assets.core.settings import ConfigurationError
from nbp_assets.fairness.alert import alert_payload
from nbp_assets.fairness.config import FairnessConfig, fairness_config
from nbp_assets.fairness.contract import (
    fairness_report_model,
    group_text,
    left_out_dimensions,
    validate_dimensions,
    validate_intersections,
)
from nbp_assets.fairness.maths import (
    ATTRIBUTION_COLUMNS,
    GAP_COLUMNS,
    GAP_DETAIL_COLUMNS,
    attributable_to,
    count_eligible,
    difference_interval,
    fairness_gaps,
    gap_history,
    recommendation_rates,
    report_rows,
    wilson_interval,
    with_intersections,
)


def people(sizes: dict[str, int], dimension: str = "age_band") -> pd.DataFrame:
    groups = [g for g, n in sizes.items() for _ in range(n)]
    return pd.DataFrame({"party_id": [f"P{i:03d}" for i in range(len(groups))], dimension: groups})


def top3(party_ids, product: str) -> pd.DataFrame:
    return pd.DataFrame({"party_id": list(party_ids), "product_id": product})


def gap_row(gaps: pd.DataFrame, product: str, dimension: str) -> dict:
    row = gaps[(gaps.product_id == product) & (gaps.dimension == dimension)]
    assert len(row) == 1
    return row.iloc[0].to_dict()


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857, table I, method 3 (Wilson score, no correction)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (29, 29, 0.8830, 1.0),
    ],
)
def test_wilson_interval_matches_published_values(k, n, low, high):
    lo, hi = wilson_interval([k], [n])
    assert round(lo[0], 4) == low and round(hi[0], 4) == high


@pytest.mark.parametrize(
    "k1, n1, k2, n2, low, high",
    [
        # Newcombe (1998), Statistics in Medicine 17:873, table II, method 10 (hybrid score, no correction)
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (5, 56, 0, 29, -0.0381, 0.1926),
    ],
)
def test_gap_interval_matches_published_values(k1, n1, k2, n2, low, high):
    lo, hi = difference_interval([k1], [n1], [k2], [n2])
    assert round(lo[0], 4) == low and round(hi[0], 4) == high


def test_a_breach_is_clear_of_uncertainty_only_when_the_whole_interval_is_above_the_threshold():
    # 60% vs 40% (20 pp) is a breach either way; with 20 per group its interval reaches below
    # 10 pp, with 2,000 per group it does not.
    small, large = people({"A": 20, "B": 20}), people({"A": 2000, "B": 2000})
    for customers, clear in ((small, False), (large, True)):
        a, b = customers[customers.age_band == "A"].party_id, customers[customers.age_band == "B"].party_id
        hits = pd.concat([a[: int(len(a) * 0.6)], b[: int(len(b) * 0.4)]])
        gaps = fairness_gaps(recommendation_rates(customers, top3(hits, "SAV"), ["SAV"], ["age_band"]))
        row = gaps.iloc[0]
        assert row["gap_pp"] == 20.0 and row["breach"]
        assert row["gap_ci_low_pp"] < 20.0 < row["gap_ci_high_pp"]
        assert bool(row["clear_breach"]) is clear, (len(customers), row["gap_ci_low_pp"])


def test_dimensions_left_out_say_why():
    left_out = left_out_dimensions(("jurisdiction", "age_band", "segment"))
    assert set(left_out) == {"gender", "status"}
    assert left_out["gender"].startswith("off by default")
    assert left_out_dimensions(("jurisdiction", "age_band", "segment", "gender")).keys() == {"status"}


def test_rates_carry_their_interval():
    customers = people({"A": 10, "B": 10})
    rates = recommendation_rates(customers, top3(customers.party_id[:5], "SAV"), ["SAV"], ["age_band"])
    assert rates[["group", "recommended", "customers"]].values.tolist() == [["A", 5, 10], ["B", 0, 10]]
    assert rates.ci_low.round(4).tolist() == [0.2366, 0.0]
    assert rates.ci_high.round(4).tolist() == [0.7634, 0.2775]


def test_small_groups_are_listed_but_not_judged():
    customers = people({"18-24": 40, "25-34": 40, "65+": 4})
    # 18-24: 20 of 40, 25-34: 16 of 40 (10 pp apart, no breach), 65+: nobody (would be a 50 pp gap)
    ranked = top3(list(customers.party_id[:20]) + list(customers.party_id[40:56]), "SAV")
    rates = recommendation_rates(customers, ranked, ["SAV"], ["age_band"])
    gaps = fairness_gaps(rates, min_group_size=30)
    row = gap_row(gaps, "SAV", "age_band")
    assert (row["highest_group"], row["lowest_group"], row["gap_pp"], row["breach"]) == ("18-24", "25-34", 10.0, False)
    assert (row["groups"], row["judged_groups"]) == (3, 2)
    rows = report_rows(rates, gaps, 30)
    assert rows.set_index("group")["judged"].to_dict() == {"18-24": True, "25-34": True, "65+": False}
    # Judged with a lower minimum, the tiny group decides the gap.
    assert gap_row(fairness_gaps(rates, min_group_size=4), "SAV", "age_band")["gap_pp"] == 50.0


def test_fewer_than_two_judged_groups_has_no_gap():
    customers = people({"A": 40, "B": 3})
    rates = recommendation_rates(customers, top3(customers.party_id[:40], "SAV"), ["SAV"], ["age_band"])
    row = gap_row(fairness_gaps(rates, min_group_size=30), "SAV", "age_band")
    assert np.isnan(row["gap_pp"]) and row["breach"] is False
    assert (row["highest_group"], row["lowest_group"]) == ("A", "A")


def eligible_pairs(party_ids, product: str) -> pd.DataFrame:
    return pd.DataFrame({"party_id": list(party_ids), "product_id": product})


def test_gap_caused_by_the_ranking():
    # Everyone may have SAV; the ranking gives it to every 55-64 customer, to 10 of 40 aged 25-34.
    customers = people({"25-34": 40, "55-64": 40})
    elig = count_eligible(customers, eligible_pairs(customers.party_id, "SAV"), ["age_band"])
    ranked = top3(list(customers.party_id[:10]) + list(customers.party_id[40:]), "SAV")
    gaps = fairness_gaps(recommendation_rates(customers, ranked, ["SAV"], ["age_band"], elig), min_group_size=30)
    assert list(gaps.columns) == GAP_COLUMNS + GAP_DETAIL_COLUMNS + ATTRIBUTION_COLUMNS
    row = gap_row(gaps, "SAV", "age_band")
    assert (row["highest_group"], row["highest_rate"], row["lowest_group"], row["lowest_rate"]) == (
        "55-64",
        1.0,
        "25-34",
        0.25,
    )
    assert (row["gap_pp"], row["ranking_pp"], row["eligibility_pp"], row["eligible_gap_pp"]) == (75.0, 75.0, 0.0, 75.0)
    assert (row["highest_eligible_share"], row["lowest_eligible_share"]) == (1.0, 1.0)


def test_gap_caused_only_by_eligibility():
    # MORT is eligible for every GB customer and 10 of 40 IE ones; every eligible customer gets it.
    customers = people({"GB": 40, "IE": 40}, "jurisdiction")
    allowed = list(customers.party_id[:50])
    elig = count_eligible(customers, eligible_pairs(allowed, "MORT"), ["jurisdiction"])
    rates = recommendation_rates(customers, top3(allowed, "MORT"), ["MORT"], ["jurisdiction"], elig)
    assert rates[["group", "eligible", "eligible_rate"]].values.tolist() == [["GB", 40, 1.0], ["IE", 10, 1.0]]
    row = gap_row(fairness_gaps(rates, min_group_size=30), "MORT", "jurisdiction")
    assert (row["gap_pp"], row["breach"], row["eligibility_pp"], row["ranking_pp"]) == (75.0, True, 75.0, 0.0)
    assert (
        row["eligible_gap_pp"] != row["eligible_gap_pp"]
    )  # IE has 10 eligible: below 30, its eligible rate is not judged
    assert attributable_to(row["eligibility_pp"], row["ranking_pp"], 10.0) == "eligibility"


def test_a_group_nobody_in_is_eligible_puts_the_whole_gap_on_eligibility():
    customers = people({"GB": 40, "IE": 40}, "jurisdiction")
    allowed = list(customers.party_id[:40])
    elig = count_eligible(customers, eligible_pairs(allowed, "MORT"), ["jurisdiction"])
    rates = recommendation_rates(customers, top3(allowed[:30], "MORT"), ["MORT"], ["jurisdiction"], elig)
    assert rates.eligible_rate.isna().tolist() == [False, True]
    row = gap_row(fairness_gaps(rates, min_group_size=30), "MORT", "jurisdiction")
    assert (row["gap_pp"], row["eligibility_pp"], row["ranking_pp"]) == (75.0, 75.0, 0.0)


def test_split_always_adds_up_to_the_gap():
    rng = np.random.default_rng(11)
    n = 3000
    customers = pd.DataFrame({"party_id": [f"P{i}" for i in range(n)], "segment": rng.choice(list("ABCD"), n)})
    pairs = pd.DataFrame({"party_id": np.repeat(customers.party_id, 3), "product_id": rng.choice(list("XYZW"), 3 * n)})
    pairs = pairs.drop_duplicates()
    ranked = pairs.sample(frac=0.5, random_state=3)  # recommended only within eligibility, as the gate ensures
    elig = count_eligible(customers, pairs, ["segment"])
    gaps = fairness_gaps(recommendation_rates(customers, ranked, list("WXYZ"), ["segment"], elig), min_group_size=30)
    assert ((gaps.eligibility_pp + gaps.ranking_pp) - gaps.gap_pp).abs().max() < 2e-4


def test_count_eligible_ignores_duplicates_and_unknown_parties():
    customers = people({"A": 2, "B": 1})
    pairs = pd.DataFrame({"party_id": ["P000", "P000", "P002", "P999"], "product_id": ["SAV", "SAV", "SAV", "SAV"]})
    assert count_eligible(customers, pairs, ["age_band"]).values.tolist() == [["SAV", "A", 1], ["SAV", "B", 1]]


def test_gap_history_counts_breached_weeks():
    history = pd.DataFrame(
        {
            "week_start": pd.to_datetime(["2026-10-26", "2026-11-02", "2026-11-09", "2026-11-09"]),
            "product_id": ["SAV", "SAV", "SAV", "CARD"],
            "dimension": "age_band",
            "gap_pp": [12.0, 9.5, 30.0, 1.0],
            "breach": [True, False, True, False],
        }
    )
    weeks = ["2026-10-19", "2026-10-26", "2026-11-02", "2026-11-09"]
    wide = gap_history(history, weeks)
    assert wide.columns.tolist() == ["product_id", "dimension", *weeks, "weeks_reported", "weeks_breached"]
    sav = wide[wide.product_id == "SAV"].iloc[0]
    assert np.isnan(sav["2026-10-19"]) and [sav[w] for w in weeks[1:]] == [12.0, 9.5, 30.0]
    assert (sav.weeks_reported, sav.weeks_breached) == (3, 2)
    assert wide[wide.product_id == "CARD"][["weeks_reported", "weeks_breached"]].values.tolist() == [[1, 0]]


@pytest.mark.parametrize(
    ("eligibility", "ranking", "expected"),
    [
        (57.1, 0.0, "eligibility"),
        (0.0, 70.0, "ranking"),
        (15.0, 15.0, "ranking and eligibility"),
        (6.0, 6.0, "ranking and eligibility combined"),
        (None, None, None),
    ],
)
def test_attribution_names_what_would_breach_alone(eligibility, ranking, expected):
    assert attributable_to(eligibility, ranking, 10.0) == expected


def test_alert_payload_is_plain_json():
    row = {
        "product_id": "SAV",
        "dimension": "age_band",
        "highest_group": "55-64",
        "highest_rate": np.float64(1.0),
        "highest_customers": np.int64(80),
        "lowest_group": "25-34",
        "lowest_rate": np.float64(0.3),
        "lowest_customers": np.int64(80),
        "gap_pp": np.float64(70.0),
        "highest_eligible_rate": 1.0,
        "lowest_eligible_rate": 0.3,
        "highest_eligible_share": 1.0,
        "lowest_eligible_share": 1.0,
        "eligibility_pp": 0.0,
        "ranking_pp": 70.0,
    }
    alert = alert_payload(row, "2026-11-02", "nbp-1.0+wabc", 10.0, "run1", np.int64(3), 4, "/r/2026-11-02.html")
    assert json.loads(json.dumps(alert)) == alert
    assert (
        alert["attributable_to"] == "ranking"
        and alert["weeks_breached"] == 3
        and alert["type"] == "nbp.fairness_breach"
    )


# ---------------------------------------------------------------------------- configuration


def test_default_configuration():
    assert fairness_config({}) == FairnessConfig(("jurisdiction", "age_band", "segment"), 30, 8, False)


def test_configuration_from_environment():
    config = fairness_config(
        {
            "NBP_FAIRNESS_DIMENSIONS": " jurisdiction, age_band,segment ,gender",
            "NBP_FAIRNESS_MIN_GROUP": "50",
            "NBP_FAIRNESS_HISTORY_WEEKS": "12",
            "NBP_FAIRNESS_BLOCKS_PUBLISH": "TRUE",
        }
    )
    assert config == FairnessConfig(("jurisdiction", "age_band", "segment", "gender"), 50, 12, True)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"NBP_FAIRNESS_DIMENSIONS": "jurisdiction,nationality"},
            "'nationality' is not a column of the customers asset",
        ),
        ({"NBP_FAIRNESS_DIMENSIONS": "income"}, "'income' is numeric"),
        ({"NBP_FAIRNESS_DIMENSIONS": "gender,gender"}, "names a dimension twice"),
        ({"NBP_FAIRNESS_DIMENSIONS": " , "}, "is empty"),
        ({"NBP_FAIRNESS_MIN_GROUP": "0"}, "NBP_FAIRNESS_MIN_GROUP=0 is outside"),
        ({"NBP_FAIRNESS_MIN_GROUP": "thirty"}, "not a whole number"),
        ({"NBP_FAIRNESS_BLOCKS_PUBLISH": "maybe"}, "expected true or false"),
    ],
)
def test_bad_configuration_is_named(env, message):
    with pytest.raises(ValueError, match=message):
        fairness_config(env)


def test_contract_follows_the_configured_dimensions():
    assert validate_dimensions(["gender"]) == ("gender",)
    model = fairness_report_model(["jurisdiction", "gender"])
    frame = pd.DataFrame(
        {
            "week_start": pd.to_datetime(["2026-11-09"] * 2),
            "product_id": ["SAV", "SAV"],
            "dimension": ["gender", "age_band"],
            "group": ["F", "18-24"],
            "customers": [40, 40],
            "recommended": [10, 10],
            "rate": [0.25, 0.25],
            "ci_low": [0.14, 0.14],
            "ci_high": [0.4, 0.4],
            "judged": [True, True],
            "eligible": [40, 40],
            "eligible_rate": [0.25, 0.25],
            "gap_pp": [0.0, 0.0],
            "breach": [False, False],
            "eligible_gap_pp": [0.0, 0.0],
            "model_version": ["m", "m"],
        }
    )
    with pytest.raises(ContractViolation, match="age_band"):
        validate(model, frame, table="fairness_report")
    validate(model, frame.iloc[:1], table="fairness_report")


# ---------------------------------------------------------------- intersections (issue 22, points 7 and 8)

ALLOWED = "allowed dimensions: jurisdiction, segment, age_band, gender, status"


def test_intersections_from_environment_are_judged_after_the_dimensions():
    assert fairness_config({}).intersections == ()
    config = fairness_config({"NBP_FAIRNESS_INTERSECTIONS": " jurisdiction * age_band ,, gender*segment "})
    assert config.intersections == ("jurisdiction*age_band", "gender*segment")
    assert config.judged == ("jurisdiction", "age_band", "segment", "jurisdiction*age_band", "gender*segment")
    assert fairness_config({"NBP_FAIRNESS_INTERSECTIONS": " "}).intersections == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("jurisdiction", "item 'jurisdiction' is not a pair of two dimensions a*b; "),
        ("jurisdiction*age_band*segment", "item 'jurisdiction*age_band*segment' is not a pair of two dimensions"),
        ("*age_band", "item '*age_band' is not a pair of two dimensions"),
        ("jurisdiction*religion", "item 'jurisdiction*religion': 'religion' is not a column of the customers asset; "),
        ("income*age_band", "item 'income*age_band': 'income' is numeric (band it upstream first); "),
        ("age_band*age_band", "item 'age_band*age_band' pairs 'age_band' with itself; "),
    ],
)
def test_a_bad_intersection_is_one_line_naming_the_variable_item_and_choices(value, message):
    with pytest.raises(ConfigurationError) as raised:
        fairness_config({"NBP_FAIRNESS_INTERSECTIONS": f"segment*gender,{value}"})
    text = str(raised.value)
    assert "\n" not in text
    assert text.startswith(f"NBP_FAIRNESS_INTERSECTIONS {message}")
    assert text.endswith(ALLOWED)


def test_a_pair_named_twice_in_either_order_is_refused():
    with pytest.raises(
        ConfigurationError, match=r"names the pair jurisdiction\*age_band twice \('age_band\*jurisdiction'\)"
    ):
        validate_intersections(["jurisdiction*age_band", "age_band*jurisdiction"])


def test_an_intersection_is_counted_per_pair_of_values_and_judged_like_a_dimension():
    combos = pd.DataFrame(
        {
            "jurisdiction": ["GB", "GB", "IE", "IE", None],
            "age_band": ["25-34", "55-64", "25-34", "55-64", "25-34"],
            "customers": [40, 40, 40, 40, 3],
        }
    )
    crossed = with_intersections(combos, ["jurisdiction*age_band"])
    assert list(crossed["jurisdiction*age_band"]) == ["GB*25-34", "GB*55-64", "IE*25-34", "IE*55-64", "(unknown)*25-34"]
    assert with_intersections(combos, []) is combos
    assert group_text("jurisdiction*age_band", "IE*25-34") == "jurisdiction=IE & age_band=25-34"
    assert group_text("age_band", "25-34") == "25-34"


def test_contract_accepts_the_configured_intersections_only():
    frame = pd.DataFrame(
        {
            "week_start": pd.to_datetime(["2026-11-09"] * 2),
            "product_id": ["SAV", "SAV"],
            "dimension": ["jurisdiction*age_band", "segment*gender"],
            "group": ["IE*25-34", "MASS*F"],
            "customers": [40, 40],
            "recommended": [10, 10],
            "rate": [0.25, 0.25],
            "ci_low": [0.14, 0.14],
            "ci_high": [0.4, 0.4],
            "judged": [True, True],
            "eligible": [40, 40],
            "eligible_rate": [0.25, 0.25],
            "gap_pp": [0.0, 0.0],
            "breach": [False, False],
            "eligible_gap_pp": [0.0, 0.0],
            "model_version": ["m", "m"],
        }
    )
    model = fairness_report_model(["jurisdiction", "age_band", "segment"], ["jurisdiction*age_band"])
    validate(model, frame.iloc[:1], table="fairness_report")
    with pytest.raises(ContractViolation, match="segment"):
        validate(model, frame, table="fairness_report")


def _suitability_rates(withheld_low: int) -> pd.DataFrame:
    from nbp_assets.fairness.maths import rates_from_counts

    sizes = pd.DataFrame({"dimension": "segment", "group": ["A", "B"], "customers": [100, 100]})
    hits = pd.DataFrame({"product_id": "P", "dimension": "segment", "group": ["A", "B"], "recommended": [60, 20]})
    eligible = pd.DataFrame({"product_id": "P", "segment": ["A", "B"], "eligible": [80, 50]})
    if withheld_low is not None:
        eligible["withheld"] = [0, withheld_low]
    return rates_from_counts(sizes, hits, ["P"], ["segment"], eligible)


def test_suitability_splits_the_ranking_part_and_nothing_withheld_keeps_the_two_way_figures_bit_for_bit():
    from nbp_assets.fairness.maths import fairness_gaps

    two_way = fairness_gaps(_suitability_rates(None)).iloc[0]
    none_withheld = fairness_gaps(_suitability_rates(0)).iloc[0]
    for column in ("gap_pp", "eligibility_pp", "ranking_pp", "eligible_gap_pp", "gap_ci_low_pp"):
        assert none_withheld[column] == two_way[column], column  # exact, not approx
    assert none_withheld["suitability_pp"] == 0.0
    three_way = fairness_gaps(_suitability_rates(25)).iloc[0]  # B: 25 of 50 eligible suitable, 20 of them recommended
    assert three_way["eligibility_pp"] == two_way["eligibility_pp"]
    assert three_way["suitability_pp"] > 0 and three_way["ranking_pp"] < two_way["ranking_pp"]
    parts = three_way["eligibility_pp"] + three_way["suitability_pp"] + three_way["ranking_pp"]
    assert parts == pytest.approx(three_way["gap_pp"], abs=3e-4)
    assert three_way["suitability_pp"] + three_way["ranking_pp"] == pytest.approx(two_way["ranking_pp"], abs=2e-4)


def test_attributable_to_names_suitability_and_keeps_the_two_way_wording():
    from nbp_assets.fairness.maths import attributable_to

    assert attributable_to(0.0, 0.0, 10.0, 61.9) == "suitability"
    assert attributable_to(12.0, 11.0, 10.0, 0.0) == "ranking and eligibility"
    assert attributable_to(3.0, 11.0, 10.0, 12.0) == "ranking and suitability"
    assert attributable_to(5.0, 5.0, 10.0, 0.0) == "ranking and eligibility combined"
    assert attributable_to(5.0, 5.0, 10.0) == "ranking and eligibility combined"
    assert attributable_to(5.0, 5.0, 10.0, 5.0) == "ranking, suitability and eligibility combined"
