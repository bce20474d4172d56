"""Every version of every customer, kept as columns for the point-in-time join.

The rows are ordered by customer, then by the time each version starts; a customer's
versions are contiguous (`first`, `count` per customer code). The version an event joins is
found with a few whole-column passes (one per version a customer in the batch has), never
event by event, and a new version is merged into place without re-sorting the rest.
Same answer as model.offers.version_at_event: the latest version starting at or before the
event, else the customer's first; of two versions starting at the same instant, the one
that arrived later.
"""

from __future__ import annotations

from itertools import repeat

import numpy as np
import pandas as pd

_EMPTY_INT = np.empty(0, dtype="int64")
_EMPTY_FLOAT = np.empty(0, dtype="float64")


class CustomerVersions:
    """Customers known from CUSTOMERS_TABLE and all their versions."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}  # CUSTOMER_ID -> customer code (order of first arrival)
        self.code, self.valid_from = _EMPTY_INT, _EMPTY_INT  # valid_from: bank-local ns
        self.income, self.fico = _EMPTY_FLOAT, _EMPTY_FLOAT  # NaN = NULL
        self.first, self.count = _EMPTY_INT, _EMPTY_INT  # per customer code

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, party: object) -> bool:
        return party in self.ids

    @property
    def versions(self) -> int:
        return len(self.code)

    def codes(self, parties: list[str]) -> np.ndarray:
        """Customer code of each party; -1 for a customer without a record."""
        return np.fromiter(map(self.ids.get, parties, repeat(-1)), dtype="int64", count=len(parties))

    def add(self, parties: list[str], valid_from_ns, income, fico) -> None:
        """Merge new versions (any order, any customers) into place."""
        if not parties:
            return
        ids = self.ids
        for p in parties:  # table records, not events: new customers get the next codes
            ids.setdefault(p, len(ids))
        codes = self.codes(parties)
        valid_from = np.asarray(valid_from_ns, dtype="int64")
        order = np.lexsort((valid_from, codes))  # stable: equal instants keep their arrival order
        codes, valid_from = codes[order], valid_from[order]
        income, fico = _nullable(income)[order], _nullable(fico)[order]
        grown = len(ids) - len(self.count)
        count = np.concatenate([self.count, np.zeros(grown, dtype="int64")])
        first = np.concatenate([self.first, np.full(grown, self.versions, dtype="int64")])
        # after the customer's versions that start at or before the new one (a later arrival
        # at the same instant goes after, so it wins, as in the warehouse path)
        at = first[codes] + self._not_after(codes, valid_from, first, count)
        self.code = np.insert(self.code, at, codes)
        self.valid_from = np.insert(self.valid_from, at, valid_from)
        self.income = np.insert(self.income, at, income)
        self.fico = np.insert(self.fico, at, fico)
        self.count = count + np.bincount(codes, minlength=len(count))
        self.first = np.concatenate([[0], np.cumsum(self.count)[:-1]]).astype("int64")

    def at(self, codes: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
        """Row of the version each event joins (codes must be known customers)."""
        k = self._not_after(codes, times_ns, self.first, self.count)
        return self.first[codes] + np.maximum(k - 1, 0)

    def _not_after(self, codes, times, first, count) -> np.ndarray:
        """How many of each customer's versions start at or before the given time."""
        start, n = first[codes], count[codes]
        k = np.zeros(len(codes), dtype="int64")
        live = np.nonzero(n > 0)[0]
        j = 0
        while len(live):  # one pass per version depth; versions are in time order, so stop early
            step = self.valid_from[start[live] + j] <= times[live]
            k[live[step]] += 1
            live = live[step]
            j += 1
            live = live[n[live] > j]
        return k


def _nullable(values) -> np.ndarray:
    """Whole numbers with None for NULL as float64 with NaN (exact below 2**53); a fraction
    is refused, as the warehouse's INTEGER column would."""
    return pd.array(list(values), dtype="Int64").to_numpy("float64", na_value=np.nan)
