"""The stream processor's functional core: its tables, its waiting events, and one step.

No Kafka and no Dagster here. The state is what ksqlDB would keep in RocksDB for the
recipe: every version of every customer (for the point-in-time join), the offers, every
rules version, and the events waiting for their customer's record. `step` turns a
micro-batch of events into the recipe's two outputs with the warehouse path's rules code
(offers.rules) and its join (offers.model.POINT_IN_TIME_JOIN, as CustomerVersions), on plain
columns: a micro-batch of a few dozen events must cost well under a millisecond, which
DataFrames cannot do. test_offer_kafka checks that both paths give identical rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nbp_assets.contract.offers import FROM_EVENT, FROM_OFFER, FROM_RULE, FROM_VERSION
from nbp_assets.offers.model import DEFAULT_OFFERS_FILE, LOOKUP_FROM_NBO, CustomerVersions
from nbp_assets.offers.rules import RuleSet, assign_arrays, load_rules, rules_from_frame

EVENT_COLUMNS = [
    "activity_id",
    "party_id",
    "event_time",
    "activity_type",
    "propensity_to_buy",
    "ip_address",
    "customer_raw",
    "partition",
]
Columns = dict[str, np.ndarray]  # one array per column, all the same length


@dataclass
class Step:
    """One micro-batch's outcome, as columns named like the topics' JSON fields."""

    nbo: Columns  # NEXT_BEST_OFFER (CUSTOMER_ID as it came on the event)
    lookup: Columns  # NEXT_BEST_OFFER_LOOKUP
    unmatched_offers: int  # offers whose OFFER_ID is not in the offers table (no lookup row)
    pending_changed: set[str]  # customers whose waiting events changed (to write to the changelog)


@dataclass
class OfferState:
    """Tables and waiting events of one processor."""

    customers: CustomerVersions = field(default_factory=CustomerVersions)
    offers: dict[int, tuple[str, str]] = field(default_factory=dict)
    rules_rows: dict[int, list[dict]] = field(default_factory=dict)
    pending: dict[str, tuple[int, list[dict]]] = field(default_factory=dict)  # party -> (activity partition, events)
    _rules: RuleSet | None = None
    _offer_columns: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # ---------------------------------------------------------------- tables

    def add_customer_versions(self, parties: list[str], valid_from_ns: list[int], income: list, fico: list) -> set[str]:
        """Append customer versions (a record is a version; all are kept). Returns the
        customers who have events waiting: their record has arrived."""
        self.customers.add(parties, valid_from_ns, income, fico)
        return {p for p in parties if p in self.pending}

    def set_offer(self, offer_id: int, value: dict | None) -> None:
        if value is None:
            self.offers.pop(offer_id, None)
        else:
            self.offers[offer_id] = (value["OFFER_NAME"], value["OFFER_URL"])
        self._offer_columns = None

    def set_rules_version(self, version: int, rows: list[dict] | None) -> None:
        """Replace one rules version; the rules are re-validated as a whole (raises
        ContractViolation and keeps the previous rules if the new set is invalid)."""
        before = dict(self.rules_rows)
        if rows is None:
            self.rules_rows.pop(version, None)
        else:
            self.rules_rows[version] = rows
        try:
            self._rules = self._build_rules()
        except Exception:
            self.rules_rows = before
            raise

    def _build_rules(self) -> RuleSet | None:
        if not self.rules_rows:
            return None
        frame = pd.DataFrame([r for rows in self.rules_rows.values() for r in rows])
        frame["valid_from"] = pd.to_datetime(frame["valid_from"])
        return rules_from_frame(frame, source="NEXT_BEST_OFFER_RULES")

    @property
    def rules(self) -> RuleSet:
        """The published rules; the recipe's CASE until a version arrives (as the warehouse path)."""
        if self._rules is None:
            self._rules = self._build_rules() or load_rules()
        return self._rules

    @property
    def offer_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(OFFER_ID ascending, OFFER_NAME, OFFER_URL); the recipe's five offers until one
        arrives (as the warehouse path)."""
        if self._offer_columns is None:
            if self.offers:
                ids = sorted(self.offers)
                names, urls = [self.offers[i][0] for i in ids], [self.offers[i][1] for i in ids]
            else:
                default = pd.read_csv(DEFAULT_OFFERS_FILE).sort_values("offer_id")
                ids, names, urls = (default[c].tolist() for c in ("offer_id", "offer_name", "offer_url"))
            self._offer_columns = (
                np.array(ids, dtype="int64"),
                np.array(names, dtype=object),
                np.array(urls, dtype=object),
            )
        return self._offer_columns

    # ---------------------------------------------------------------- waiting events

    def restore_pending(self, party: str, partition: int, events: list[dict] | None) -> None:
        if events:
            self.pending[party] = (partition, events)
        else:
            self.pending.pop(party, None)

    def drop_pending_partitions(self, partitions: set[int]) -> None:
        """Forget the waiting events of activity partitions this processor no longer owns."""
        self.pending = {p: v for p, v in self.pending.items() if v[0] not in partitions}

    def take_pending(self, parties: set[str]) -> Columns | None:
        """Waiting events of these customers (now known), removed from the waiting list;
        None when there are none (the usual case, which must cost nothing)."""
        if not parties:
            return None
        rows = [e for p in parties if p in self.pending and p in self.customers for e in self.pending[p][1]]
        for p in parties:
            if p in self.customers:
                self.pending.pop(p, None)
        if not rows:
            return None
        frame = pd.DataFrame.from_records(rows, columns=EVENT_COLUMNS)
        columns = {c: frame[c].to_numpy(object) for c in EVENT_COLUMNS}
        for c, dtype in (("activity_id", "int64"), ("propensity_to_buy", "float64"), ("partition", "int64")):
            columns[c] = frame[c].to_numpy(dtype)
        columns["event_time"] = frame["event_time"].to_numpy("int64").view("datetime64[ns]")
        return columns

    @property
    def pending_count(self) -> int:
        return sum(len(v[1]) for v in self.pending.values())

    # ---------------------------------------------------------------- one step

    def step(self, events: Columns) -> Step:
        """Offer every event whose customer is known (joined to the version valid at its
        time, or the first version if the record came later); the others wait."""
        codes = self.customers.codes(events["party_id"].tolist())
        known = codes >= 0
        every = bool(known.all())  # the usual case needs no row selection
        ev = events if every else {k: v[known] for k, v in events.items()}
        event_time = ev["event_time"]
        row = self.customers.at(codes if every else codes[known], event_time.view("int64"))
        c = self.customers
        nbo = {to: ev[name] for name, to in FROM_EVENT.items()}
        nbo["CUSTOMER_ID"] = ev["customer_raw"]  # as it came on the event (an integer stays one)
        nbo |= {to: getattr(c, name)[row] for name, to in FROM_VERSION.items()}
        nbo["CUSTOMER_VALID_FROM"] = nbo["CUSTOMER_VALID_FROM"].view("datetime64[ns]")
        decided = assign_arrays(self.rules, event_time, nbo["INCOME"], nbo["FICO"], ev["propensity_to_buy"])
        nbo |= dict(zip(FROM_RULE, decided))
        offer = nbo["OFFER_ID"]
        # the recipe's final INNER JOIN to the offers table; what it would drop is counted
        ids, names, urls = self.offer_columns
        at = np.minimum(np.searchsorted(ids, offer), len(ids) - 1)
        found = ids[at] == offer
        whole = bool(found.all())
        lookup = {f: (nbo[f] if whole else nbo[f][found]) for f in LOOKUP_FROM_NBO}
        lookup |= dict(zip(FROM_OFFER.values(), (names[at[found]], urls[at[found]])))
        changed = set() if every else self._wait({k: v[~known] for k, v in events.items()})
        return Step(nbo, lookup, int((~found).sum()), changed)

    def _wait(self, waiting: Columns) -> set[str]:
        """Queue events of customers without a record (a replayed event is queued once)."""
        waiting = {**waiting, "event_time": waiting["event_time"].view("int64")}
        changed = set()
        for values in zip(*(waiting[c].tolist() for c in EVENT_COLUMNS)):
            r = dict(zip(EVENT_COLUMNS, values))
            _, queued = self.pending.setdefault(r["party_id"], (int(r["partition"]), []))
            if not any(q["activity_id"] == r["activity_id"] for q in queued):
                queued.append(r)
            changed.add(r["party_id"])
        return changed
