"""Fairness report: recommendation rates per group and the breach rule, checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbp_assets.fairness.maths import (
    BREACH_THRESHOLD_PP,
    GAP_COLUMNS,
    GAP_DETAIL_COLUMNS,
    RATE_COLUMNS,
    fairness_gaps,
    recommendation_rates,
)

PRODUCTS = ["SAV", "CARD", "MORT"]  # MORT is recommended to nobody


def customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "party_id": ["P1", "P2", "P3", "P4", "P5"],
            "jurisdiction": ["GB", "GB", "IE", "IE", "IE"],
            "age_band": ["18-24", "25-34", "18-24", "25-34", "18-24"],
            "segment": ["MASS", "MASS", "AFFLUENT", "MASS", "AFFLUENT"],
        }
    )


def ranked() -> pd.DataFrame:
    rows = [
        ("P1", "SAV"),
        ("P1", "CARD"),
        ("P1", "FX"),  # FX is not a reported product
        ("P2", "SAV"),
        ("P2", "CARD"),
        ("P3", "SAV"),
        ("P4", "CARD"),
        # P5 got no recommendation at all but still counts in its groups.
        ("P9", "SAV"),  # not an active customer this week
    ]
    return pd.DataFrame(rows, columns=["party_id", "product_id"])


def rate(rates: pd.DataFrame, product: str, dimension: str, group: str) -> tuple[int, int, float]:
    row = rates[(rates.product_id == product) & (rates.dimension == dimension) & (rates.group == group)]
    assert len(row) == 1
    return int(row.customers.iloc[0]), int(row.recommended.iloc[0]), float(row.rate.iloc[0])


def test_rates_match_hand_computation():
    rates = recommendation_rates(customers(), ranked(), PRODUCTS)

    assert list(rates.columns) == RATE_COLUMNS
    # 3 products x (2 jurisdictions + 2 age bands + 2 segments)
    assert len(rates) == 18
    assert rate(rates, "SAV", "jurisdiction", "GB") == (2, 2, 1.0)
    assert rate(rates, "SAV", "jurisdiction", "IE") == (3, 1, 1 / 3)  # P5 in the denominator
    assert rate(rates, "SAV", "age_band", "18-24") == (3, 2, 2 / 3)
    assert rate(rates, "SAV", "age_band", "25-34") == (2, 1, 0.5)
    assert rate(rates, "SAV", "segment", "AFFLUENT") == (2, 1, 0.5)
    assert rate(rates, "SAV", "segment", "MASS") == (3, 2, 2 / 3)
    assert rate(rates, "CARD", "age_band", "18-24") == (3, 1, 1 / 3)
    assert rate(rates, "CARD", "age_band", "25-34") == (2, 2, 1.0)
    assert rate(rates, "CARD", "segment", "AFFLUENT") == (2, 0, 0.0)
    assert rate(rates, "CARD", "segment", "MASS") == (3, 3, 1.0)
    assert "FX" not in set(rates.product_id)


def test_gaps_match_hand_computation():
    gaps = fairness_gaps(recommendation_rates(customers(), ranked(), PRODUCTS))
    assert list(gaps.columns) == GAP_COLUMNS + GAP_DETAIL_COLUMNS  # no eligibility given: no attribution
    got = gaps.set_index(["product_id", "dimension"])

    assert got.loc[("SAV", "jurisdiction")].to_dict() == {
        "highest_group": "GB",
        "highest_rate": 1.0,
        "lowest_group": "IE",
        "lowest_rate": 1 / 3,
        "gap_pp": 66.6667,
        "breach": True,
        "highest_customers": 2,
        "lowest_customers": 3,
        "groups": 2,
        "judged_groups": 2,
        # 2 of 2 against 1 of 3: a 66.7 pp breach that its own interval cannot tell from noise
        "gap_ci_low_pp": -13.53,
        "gap_ci_high_pp": 93.8508,
        "clear_breach": False,
    }
    assert got.loc[("SAV", "age_band"), "gap_pp"] == 16.6667
    assert got.loc[("SAV", "age_band"), "highest_group"] == "18-24"
    assert got.loc[("CARD", "segment"), ["lowest_group", "gap_pp"]].tolist() == ["AFFLUENT", 100.0]
    assert got["breach"].sum() == 6  # every SAV and CARD dimension, no MORT one


def test_product_recommended_to_no_one_has_rate_zero_and_no_gap():
    rates = recommendation_rates(customers(), ranked(), PRODUCTS)
    mort = rates[rates.product_id == "MORT"]
    assert len(mort) == 6
    assert (mort.rate == 0.0).all() and (mort.recommended == 0).all()
    assert mort.customers.tolist() == [2, 3, 3, 2, 2, 3]

    gaps = fairness_gaps(rates).set_index(["product_id", "dimension"])
    assert gaps.loc["MORT", "gap_pp"].tolist() == [0.0, 0.0, 0.0]
    assert not gaps.loc["MORT", "breach"].any()
    # All groups tie at 0: the first name wins both sides, so the report is stable.
    assert gaps.loc[("MORT", "jurisdiction"), ["highest_group", "lowest_group"]].tolist() == ["GB", "GB"]


def test_customers_without_recommendations_count_in_the_denominator():
    no_one_else = ranked()[ranked().party_id == "P1"]
    rates = recommendation_rates(customers(), no_one_else, ["SAV"], dimensions=["jurisdiction"])
    assert rates[["group", "customers", "recommended"]].values.tolist() == [["GB", 2, 1], ["IE", 3, 0]]
    assert rates.rate.tolist() == [0.5, 0.0]


def test_a_product_twice_in_one_top3_counts_once():
    doubled = pd.concat([ranked(), ranked().iloc[[0]]], ignore_index=True)
    assert recommendation_rates(customers(), doubled, PRODUCTS).equals(
        recommendation_rates(customers(), ranked(), PRODUCTS)
    )


def gaps_from(rates: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "product_id": "SAV",
            "dimension": "segment",
            "group": [f"G{i}" for i in range(len(rates))],
            "customers": 1_000_000,
            "recommended": 0,
            "rate": rates,
        }
    )


@pytest.mark.parametrize(
    ("high", "low", "gap", "breach"),
    [
        (0.2, 0.1, 10.0, False),  # exactly the threshold; 0.2 - 0.1 is 10.000000000000002 in floats
        (0.600001, 0.5, 10.0001, True),
        (0.6, 0.5, 10.0, False),  # 0.6 - 0.5 is 9.999999999999998 in floats
        (0.35, 0.25, 10.0, False),
    ],
)
def test_threshold_is_strict(high, low, gap, breach):
    gaps = fairness_gaps(gaps_from([low, high]))
    assert gaps.gap_pp.tolist() == [gap]
    assert gaps.breach.tolist() == [breach]
    assert BREACH_THRESHOLD_PP == 10.0


def test_threshold_can_be_set():
    assert fairness_gaps(gaps_from([0.5, 0.55]), threshold_pp=4.99).breach.tolist() == [True]


def test_ten_points_from_whole_counts_is_not_a_breach():
    # 6 of 10 against 5 of 10: the float difference is just under 10 pp before rounding.
    people = pd.DataFrame({"party_id": [f"P{i}" for i in range(20)], "segment": ["A"] * 10 + ["B"] * 10})
    chosen = [f"P{i}" for i in range(6)] + [f"P{i}" for i in range(10, 15)]
    top3 = pd.DataFrame({"party_id": chosen, "product_id": "SAV"})
    gaps = fairness_gaps(recommendation_rates(people, top3, ["SAV"], dimensions=["segment"]))
    assert gaps[["highest_group", "lowest_group", "gap_pp", "breach"]].values.tolist() == [["A", "B", 10.0, False]]


def test_ties_are_broken_by_group_name():
    gaps = fairness_gaps(gaps_from([0.3, 0.5, 0.5, 0.3]))  # G1/G2 tie high, G0/G3 tie low
    assert gaps[["highest_group", "lowest_group"]].values.tolist() == [["G1", "G0"]]
    reversed_input = gaps_from([0.3, 0.5, 0.5, 0.3]).iloc[::-1]
    assert fairness_gaps(reversed_input).equals(gaps)


def test_output_order_does_not_depend_on_input_order():
    shuffled_customers = customers().sample(frac=1, random_state=7)
    shuffled_ranked = ranked().sample(frac=1, random_state=3)
    rates = recommendation_rates(shuffled_customers, shuffled_ranked, PRODUCTS)
    assert rates.equals(recommendation_rates(customers(), ranked(), PRODUCTS))
    # product as given, dimension as given, group by name
    assert rates.product_id.unique().tolist() == PRODUCTS
    assert rates[rates.product_id == "SAV"].dimension.unique().tolist() == ["jurisdiction", "age_band", "segment"]
    assert rates[(rates.product_id == "SAV") & (rates.dimension == "age_band")].group.tolist() == ["18-24", "25-34"]


def test_missing_dimension_value_is_its_own_group():
    people = customers()
    people.loc[4, "segment"] = None
    rates = recommendation_rates(people, ranked(), ["SAV"], dimensions=["segment"])
    assert rates[["group", "customers"]].values.tolist() == [["(unknown)", 1], ["AFFLUENT", 1], ["MASS", 3]]


def test_duplicate_customer_is_rejected():
    with pytest.raises(ValueError, match="one row per party_id"):
        recommendation_rates(pd.concat([customers(), customers().iloc[[0]]]), ranked(), PRODUCTS)


@pytest.mark.slow
def test_scale_many_customers():
    """Correct counts on a large population (speed is the benchmark's business, not a test's)."""
    rng = np.random.default_rng(0)
    n, products = 200_000, [f"PRD{i:03d}" for i in range(40)]
    people = pd.DataFrame(
        {
            "party_id": np.char.add("P", np.arange(n).astype(str)).astype(object),
            "jurisdiction": rng.choice(["GB", "IE", "JE", "GG", "IM"], n).astype(object),
            "age_band": rng.choice(["18-24", "25-34", "35-44", "45-54", "55-64", "65+"], n).astype(object),
            "segment": rng.choice(["MASS", "MASS_AFFLUENT", "AFFLUENT", "PRIVATE"], n).astype(object),
        }
    )
    top3 = pd.DataFrame(
        {
            "party_id": np.repeat(people.party_id.to_numpy(), 3),
            "product_id": np.asarray(products, dtype=object)[rng.integers(0, 40, 3 * n)],
        }
    )
    rates = recommendation_rates(people, top3, products)
    gaps = fairness_gaps(rates)

    assert len(rates) == 40 * (5 + 6 + 4) and len(gaps) == 40 * 3
    assert (rates.groupby(["product_id", "dimension"]).customers.sum() == n).all()
    # every customer's distinct products, counted once per dimension
    assert rates.groupby("dimension").recommended.sum().nunique() == 1
    assert rates[rates.dimension == "segment"].recommended.sum() == len(top3.drop_duplicates())
