"""One point-in-time customer join (offers.model.POINT_IN_TIME_JOIN), two implementations:
the warehouse path's version_at_event on whole columns and the stream processor's
CustomerVersions on in-memory columns. Both run on the same synthetic events here and must
join every event to the same customer version, and give the same NEXT_BEST_OFFER rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nbp_assets.contract.offers import FROM_EVENT, FROM_VERSION
from nbp_assets.offers.model import CustomerVersions, next_best_offers, version_at_event
from nbp_assets.offers.rules import load_rules
from nbp_assets.offers.stream.state import OfferState
from nbp_assets.offers.synthetic import synthetic_stream


def _events_and_versions() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The synthetic stream plus the join's edge cases: a customer whose record starts after
    some of their events (those join the first version), and two versions of one customer
    starting at the same instant (the later arrival wins)."""
    events, versions = synthetic_stream(20_000, 2_000, seed=7)
    late = events.index[:50]
    events.loc[late, "party_id"] = "LATE"
    extra = pd.DataFrame(
        {
            "party_id": ["LATE", "LATE", versions["party_id"].iloc[0]],
            "valid_from": pd.to_datetime(["2026-07-01", "2026-07-01", "2026-03-01"]),
            "income": pd.array([10_000, 20_000, None], dtype="Int64"),
            "fico": pd.array([500, 600, 700], dtype="Int64"),
        }
    )
    return events, pd.concat([versions, extra], ignore_index=True)


def _stream_join(events: pd.DataFrame, versions: pd.DataFrame) -> np.ndarray:
    """Row of `versions` each event joins by CustomerVersions (-1: no record); the versions
    arrive in three micro-batches, in row order (arrival order decides ties)."""
    store = CustomerVersions()
    for chunk in np.array_split(np.arange(len(versions)), 3):
        part = versions.iloc[chunk]
        store.add(
            part["party_id"].tolist(),
            part["valid_from"].to_numpy("datetime64[ns]").view("int64").tolist(),
            part["income"].tolist(),
            part["fico"].tolist(),
        )
    codes = store.codes(events["party_id"].tolist())
    known = codes >= 0
    row = np.full(len(events), -1, dtype="int64")
    row[known] = store.at(codes[known], events["event_time"].to_numpy("datetime64[ns]").view("int64")[known])
    # the store's row -> the versions frame's row, by (party, valid_from, arrival among equals)
    keyed = versions.assign(n=versions.groupby(["party_id", "valid_from"]).cumcount())
    mine = pd.DataFrame({"party_id": [None] * store.versions, "valid_from": store.valid_from.view("datetime64[ns]")})
    by_code = {c: p for p, c in store.ids.items()}
    mine["party_id"] = [by_code[c] for c in store.code]
    mine["n"] = mine.groupby(["party_id", "valid_from"]).cumcount()
    position = mine.merge(keyed.reset_index(), on=["party_id", "valid_from", "n"], how="left")["index"]
    return np.where(row >= 0, position.to_numpy()[np.maximum(row, 0)], -1)


def test_batch_and_stream_join_the_same_version():
    events, versions = _events_and_versions()
    batch = version_at_event(events, versions)
    stream = _stream_join(events, versions)
    np.testing.assert_array_equal(batch, stream)
    assert (batch == -1).sum() == (events["party_id"] == "UNKNOWN").sum() > 0
    late = events["party_id"] == "LATE"
    after = late & (events["event_time"] >= pd.Timestamp("2026-07-01"))
    assert set(batch[after]) == {len(versions) - 2}  # of two versions at one instant, the later arrival
    assert set(batch[late & ~after]) == {len(versions) - 3}  # before any: the first (the first to arrive)


def _stream_columns(events: pd.DataFrame) -> dict[str, np.ndarray]:
    columns = {c: events[c].to_numpy(object) for c in ("party_id", "activity_type", "ip_address")}
    return columns | {
        "activity_id": events["activity_id"].to_numpy("int64"),
        "event_time": events["event_time"].to_numpy("datetime64[ns]"),
        "propensity_to_buy": events["propensity_to_buy"].to_numpy("float64"),
        "customer_raw": events["party_id"].to_numpy(object),
        "partition": np.zeros(len(events), dtype="int64"),
    }


def test_batch_and_stream_give_the_same_offer_rows():
    events, versions = _events_and_versions()
    offers, pending = next_best_offers(events, versions, load_rules(), "b")

    state = OfferState()
    state.add_customer_versions(
        versions["party_id"].tolist(),
        versions["valid_from"].to_numpy("datetime64[ns]").view("int64").tolist(),
        versions["income"].tolist(),
        versions["fico"].tolist(),
    )
    step = state.step(_stream_columns(events))

    got = pd.DataFrame(step.nbo)
    joined = [*FROM_EVENT.values(), *FROM_VERSION.values(), "OFFER_ID", "RULES_VERSION", "RULE_PRIORITY"]
    expected = offers[joined].astype({"INCOME": "float64", "FICO": "float64"})
    pd.testing.assert_frame_equal(
        got[joined].astype({"ACTIVITY_ID": "int64", "CUSTOMER_ID": object}),
        expected.astype(
            {"ACTIVITY_ID": "int64", "OFFER_ID": "int64", "RULES_VERSION": "int64", "RULE_PRIORITY": "int64"}
        ),
        check_dtype=False,
    )
    assert state.pending_count == len(pending) > 0
