"""A synthetic offer stream: activity events and the customer versions they join to, for the
benchmarks and the tests of the point-in-time join (deterministic for a seed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

TYPES = np.array(["branch_visit", "deposit", "web_open", "mobile_open", "new_account"], dtype=object)


def synthetic_stream(events: int, customers: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, customer versions): about 1.5 versions per customer, 1% of events for
    customers without a record (pending), events spread over 2026."""
    rng = np.random.default_rng(seed)
    ids = pd.Series(np.arange(1, customers + 1)).astype(str).str.zfill(8)
    party = ("P" + ids).to_numpy(object)
    second = rng.random(customers) < 0.5
    v_party = np.concatenate([party, party[second]])
    start = pd.Timestamp("2025-01-01").value
    year = 365 * 86_400 * 10**9
    v_from = np.concatenate([np.full(customers, start), start + year + rng.integers(0, year, second.sum())])
    income = rng.lognormal(11.0, 0.6, len(v_party)).round(-2)
    versions = pd.DataFrame(
        {
            "party_id": v_party,
            "valid_from": pd.to_datetime(v_from),
            "income": pd.array(np.where(rng.random(len(v_party)) < 0.02, np.nan, income), dtype="Int64"),
            "fico": pd.array(
                np.where(rng.random(len(v_party)) < 0.01, np.nan, rng.integers(300, 851, len(v_party))), dtype="Int64"
            ),
        }
    )
    who = rng.integers(0, customers, events)
    unknown = rng.random(events) < 0.01
    octets = rng.integers(1, 255, (events, 4)).astype(str)
    ip = pd.Series(octets[:, 0]).str.cat([pd.Series(octets[:, i]) for i in range(1, 4)], sep=".")
    frame = pd.DataFrame(
        {
            "activity_id": pd.array(np.arange(1, events + 1), dtype="Int64"),
            "party_id": np.where(unknown, "UNKNOWN", party[who]).astype(object),
            "event_time": pd.to_datetime(start + year + rng.integers(0, year, events)),
            "activity_type": TYPES[rng.integers(0, len(TYPES), events)],
            "propensity_to_buy": rng.random(events).round(2),
            "ip_address": ip.to_numpy(object),
        }
    )
    return frame, versions
