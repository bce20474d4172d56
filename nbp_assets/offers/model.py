"""The ksqlDB next-best-offer recipe on whole columns: customer join, the rule, the offers lookup.

The recipe joins each activity event to the customer table and picks an offer with a CASE.
Here the join is point in time: an event joins the customer version valid when it happened
(valid_from <= EVENT_TIME, the latest such version), so replaying an old event gives the
offer it got first. An event that precedes every version of its customer (the record
arrived after the event) joins the customer's first version. A customer with no record at
all is the recipe's INNER JOIN miss: no offer, and the event is returned as pending.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nbp_assets.offers.rules import RuleSet, assign_arrays

DEFAULT_OFFERS_FILE = Path(__file__).with_name("default_offers.csv")
# Bump when the join or the rule evaluation changes meaning (the rules themselves are data).
OFFER_CODE_VERSION = "nbo-1.0"

# The recipe's NEXT_BEST_OFFER stream, then our lineage columns.
NBO_COLUMNS = [
    "ACTIVITY_ID",
    "CUSTOMER_ID",
    "EVENT_TIME",
    "PROPENSITY_TO_BUY",
    "ACTIVITY_TYPE",
    "INCOME",
    "FICO",
    "OFFER_ID",
    "RULES_VERSION",
    "RULE_PRIORITY",
    "CUSTOMER_VALID_FROM",
    "BATCH_KEY",
]
NBO_DTYPES = {
    "ACTIVITY_ID": "Int64",
    "CUSTOMER_ID": object,
    "EVENT_TIME": "datetime64[ns]",
    "PROPENSITY_TO_BUY": "float64",
    "ACTIVITY_TYPE": object,
    "INCOME": "Int64",
    "FICO": "Int64",
    "OFFER_ID": "Int64",
    "RULES_VERSION": "Int64",
    "RULE_PRIORITY": "Int64",
    "CUSTOMER_VALID_FROM": "datetime64[ns]",
    "BATCH_KEY": object,
}
# The recipe's NEXT_BEST_OFFER_LOOKUP, exactly.
LOOKUP_COLUMNS = [
    "OFFER_ID",
    "ACTIVITY_ID",
    "CUSTOMER_ID",
    "PROPENSITY_TO_BUY",
    "ACTIVITY_TYPE",
    "INCOME",
    "FICO",
    "OFFER_NAME",
    "OFFER_URL",
]


def as_offers(frame: pd.DataFrame) -> pd.DataFrame:
    """next_best_offer rows as read back from the warehouse, with the asset's dtypes."""
    return frame.reindex(columns=NBO_COLUMNS).astype(NBO_DTYPES)


def version_at_event(events: pd.DataFrame, versions: pd.DataFrame) -> np.ndarray:
    """Row position in `versions` of the customer version each event joins; -1 if none.

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

    def column(name: str, dtype=None):
        values = events[name].to_numpy(dtype) if dtype else events[name].astype("Int64").array
        return values if every else values[known]

    event_time = column("event_time", "datetime64[ns]")
    propensity = column("propensity_to_buy", "float64")
    income = versions["income"].astype("Int64").array.take(take)
    fico = versions["fico"].astype("Int64").array.take(take)
    offer, version, priority = assign_arrays(rules, event_time, income, fico, propensity)
    out = pd.DataFrame(
        {
            "ACTIVITY_ID": column("activity_id"),
            "CUSTOMER_ID": column("party_id", object),
            "EVENT_TIME": event_time,
            "PROPENSITY_TO_BUY": propensity,
            "ACTIVITY_TYPE": column("activity_type", object),
            "INCOME": income,
            "FICO": fico,
            "OFFER_ID": pd.array(offer, dtype="Int64"),
            "RULES_VERSION": pd.array(version, dtype="Int64"),
            "RULE_PRIORITY": pd.array(priority, dtype="Int64"),
            "CUSTOMER_VALID_FROM": versions["valid_from"].to_numpy("datetime64[ns]")[take],
            "BATCH_KEY": np.full(len(take), batch_key, dtype=object),
        },
        columns=NBO_COLUMNS,
    )
    return out, (events.iloc[0:0] if every else events.loc[~known]).reset_index(drop=True)


def lookup(nbo: pd.DataFrame, offers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(lookup rows, rows whose OFFER_ID is not in offers): the recipe's final INNER JOIN,
    with what it would drop returned instead of lost."""
    at = pd.Index(offers["offer_id"].astype("int64")).get_indexer(nbo["OFFER_ID"].astype("int64"))
    found = at >= 0
    out = nbo[LOOKUP_COLUMNS[:7]]
    if not found.all():  # the usual case needs no row selection
        out, at = out.loc[found], at[found]
    out = out.assign(
        OFFER_NAME=offers["offer_name"].to_numpy(object)[at], OFFER_URL=offers["offer_url"].to_numpy(object)[at]
    )
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
