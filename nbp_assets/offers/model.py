"""The ksqlDB next-best-offer recipe on whole columns: customer join, the rule, the offers lookup.

The recipe joins each activity event to the customer table and picks an offer with a CASE.
Here the join is point in time, by one specification (POINT_IN_TIME_JOIN below) with two
implementations: version_at_event for the warehouse path (whole DataFrame columns) and
CustomerVersions for the stream processor (in-memory columns kept between micro-batches);
test_offer_join runs both on the same synthetic events and asserts the same joined rows.
"""

from __future__ import annotations

from itertools import repeat
from pathlib import Path

import numpy as np
import pandas as pd

from nbp_assets.contract.offers import FROM_EVENT, FROM_OFFER, FROM_RULE, FROM_VERSION
from nbp_assets.contract.tables import NEXT_BEST_OFFER, NEXT_BEST_OFFER_LOOKUP
from nbp_assets.offers.rules import RuleSet, assign_arrays

DEFAULT_OFFERS_FILE = Path(__file__).with_name("default_offers.csv")
# Bump when the join or the rule evaluation changes meaning (the rules themselves are data).
OFFER_CODE_VERSION = "nbo-1.0"

NBO_COLUMNS = NEXT_BEST_OFFER.columns  # declared once: contract/tables.py
NBO_DTYPES = NEXT_BEST_OFFER.dtypes()
LOOKUP_COLUMNS = NEXT_BEST_OFFER_LOOKUP.columns
# the lookup's columns that come from the offer row (the others from the offers table)
LOOKUP_FROM_NBO = [c for c in LOOKUP_COLUMNS if c in NBO_COLUMNS]


def as_offers(frame: pd.DataFrame) -> pd.DataFrame:
    """next_best_offer rows as read back from the warehouse, with the asset's dtypes."""
    return frame.reindex(columns=NBO_COLUMNS).astype(NBO_DTYPES)


POINT_IN_TIME_JOIN = """An activity event joins the version of its customer valid when it happened:
- the latest version whose valid_from is at or before the event's time, so replaying an old
  event gives the offer it got first;
- of two versions starting at the same instant, the one that arrived later (the later row);
- an event that precedes every version of its customer (the record arrived after the
  event) joins the customer's first version (of two starting at that first instant, the
  one that arrived first);
- a customer with no record at all is the recipe's INNER JOIN miss: no offer; the event
  waits (pending) until a record arrives."""


def version_at_event(events: pd.DataFrame, versions: pd.DataFrame) -> np.ndarray:
    """POINT_IN_TIME_JOIN on whole columns: row position in `versions` of the customer
    version each event joins; -1 if none.

    events: party_id, event_time. versions: party_id, valid_from (one row per version).
    """
    nv = len(versions)
    if nv == 0:
        return np.full(len(events), -1, dtype="int64")
    codes, _ = pd.factorize(pd.concat([versions["party_id"], events["party_id"]], ignore_index=True))
    v_code, e_code = codes[:nv].astype("int64"), codes[nv:].astype("int64")
    times = np.concatenate(
        [versions["valid_from"].to_numpy("datetime64[ns]"), events["event_time"].to_numpy("datetime64[ns]")]
    ).view("int64")
    # One sortable integer per (party, time): party code major, rank of the time minor.
    ranks = np.unique(times, return_inverse=True)[1].astype("int64") + 1
    width = int(ranks.max(initial=0)) + 1
    v_key, e_key = v_code * width + ranks[:nv], e_code * width + ranks[nv:]
    order = np.argsort(v_key, kind="stable")
    sorted_key, sorted_code = v_key[order], v_code[order]

    at = np.searchsorted(sorted_key, e_key, side="right") - 1  # latest version starting at or before
    at_party = (at >= 0) & (sorted_code[np.maximum(at, 0)] == e_code)
    first = np.minimum(np.searchsorted(sorted_key, e_code * width, side="left"), nv - 1)  # party's first
    first_party = sorted_code[first] == e_code
    pos = np.where(at_party, at, np.where(first_party, first, -1))
    return np.where(pos >= 0, order[np.maximum(pos, 0)], -1)


_EMPTY_INT = np.empty(0, dtype="int64")
_EMPTY_FLOAT = np.empty(0, dtype="float64")


class CustomerVersions:
    """POINT_IN_TIME_JOIN for the stream processor: every version of every customer known
    from CUSTOMERS_TABLE, kept as columns between micro-batches.

    The rows are ordered by customer, then by the time each version starts; a customer's
    versions are contiguous (`first`, `count` per customer code). The version an event joins
    is found with a few whole-column passes (one per version a customer in the batch has),
    never event by event, and a new version is merged into place without re-sorting the rest
    (a later arrival at the same instant goes after, so it wins).
    """

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


def next_best_offers(
    events: pd.DataFrame, versions: pd.DataFrame, rules: RuleSet, batch_key: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(offers, pending): the NEXT_BEST_OFFER rows of events whose customer is known, and
    the events whose customer has no record yet.

    events: the activity contract's columns. versions: customers' party_id, valid_from,
    income, fico.
    """
    pos = version_at_event(events, versions)
    known = pos >= 0
    take = pos[known]
    every = bool(known.all())  # the usual case needs no row selection

    def column(values: pd.Series, dtype: str):
        values = values.astype("Int64").array if dtype == "Int64" else values.to_numpy(dtype)
        return values if every else values[known]

    out = {to: column(events[name], NBO_DTYPES[to]) for name, to in FROM_EVENT.items()}
    for name, to in FROM_VERSION.items():
        values = versions[name]
        out[to] = (
            values.astype("Int64").array.take(take)
            if NBO_DTYPES[to] == "Int64"
            else values.to_numpy(NBO_DTYPES[to])[take]
        )
    decided = assign_arrays(rules, out["EVENT_TIME"], out["INCOME"], out["FICO"], out["PROPENSITY_TO_BUY"])
    out |= {to: pd.array(values, dtype="Int64") for to, values in zip(FROM_RULE, decided)}
    out["BATCH_KEY"] = np.full(len(take), batch_key, dtype=object)
    out = pd.DataFrame(out, columns=NBO_COLUMNS)
    return out, (events.iloc[0:0] if every else events.loc[~known]).reset_index(drop=True)


def lookup(nbo: pd.DataFrame, offers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(lookup rows, rows whose OFFER_ID is not in offers): the recipe's final INNER JOIN,
    with what it would drop returned instead of lost."""
    at = pd.Index(offers["offer_id"].astype("int64")).get_indexer(nbo["OFFER_ID"].astype("int64"))
    found = at >= 0
    out = nbo[LOOKUP_FROM_NBO]
    if not found.all():  # the usual case needs no row selection
        out, at = out.loc[found], at[found]
    out = out.assign(**{to: offers[name].to_numpy(object)[at] for name, to in FROM_OFFER.items()})
    return out.reset_index(drop=True), nbo.loc[~found]


def unaccounted(claimed: pd.Series, offered: pd.DataFrame, pending: pd.Series, previous: pd.Series) -> pd.DataFrame:
    """Events a batch would get wrong (empty = every event offered exactly once): offered
    twice, taken but neither offered nor pending, or offered by an earlier run of the same
    batch and missing now."""
    ids = offered["ACTIVITY_ID"]
    problems = [
        pd.DataFrame({"ACTIVITY_ID": ids[ids.duplicated(keep=False)], "problem": "offered twice"}),
        pd.DataFrame(
            {
                "ACTIVITY_ID": claimed[~claimed.isin(ids) & ~claimed.isin(pending)],
                "problem": "taken by the batch but neither offered nor pending",
            }
        ),
        pd.DataFrame({"ACTIVITY_ID": previous[~previous.isin(ids)], "problem": "offered by an earlier run, lost now"}),
    ]
    return pd.concat(problems, ignore_index=True)


def changed_on_replay(previous: pd.DataFrame, offers: pd.DataFrame) -> int:
    """Events an earlier run of the same batch offered differently (0 when replays are faithful)."""
    if previous.empty:
        return 0
    now = offers[["ACTIVITY_ID", "OFFER_ID", "RULES_VERSION"]].astype("int64")
    both = previous.astype("int64").merge(now, on="ACTIVITY_ID", suffixes=("", "_now"))
    return int(
        ((both["OFFER_ID"] != both["OFFER_ID_now"]) | (both["RULES_VERSION"] != both["RULES_VERSION_now"])).sum()
    )
