"""The stream processor's functional core: its tables, its waiting events, and one step.

No Kafka and no Dagster here. The state is what ksqlDB would keep in RocksDB for the
recipe: every version of every customer (for the point-in-time join), the offers, every
rules version, and the events waiting for their customer's record. `step` turns a
micro-batch of events into the recipe's two outputs with the same code as the warehouse
path (model.offers.next_best_offers and lookup, model.offers_rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nbp_assets.model.offers import DEFAULT_OFFERS_FILE, lookup, next_best_offers
from nbp_assets.model.offers_rules import RuleSet, load_rules, rules_from_frame

BATCH_KEY = "kafka"  # BATCH_KEY of the model's rows; not on the topics
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


@dataclass
class Step:
    """One micro-batch's outcome."""

    nbo: pd.DataFrame  # NEXT_BEST_OFFER rows (model columns)
    nbo_customer: np.ndarray  # CUSTOMER_ID of each nbo row as it came on the event
    lookup: pd.DataFrame  # NEXT_BEST_OFFER_LOOKUP rows
    lookup_customer: np.ndarray
    unmatched_offers: pd.DataFrame  # offers whose OFFER_ID is not in the offers table (no lookup row)
    pending_changed: set[str]  # customers whose waiting events changed (to write to the changelog)


@dataclass
class OfferState:
    """Tables and waiting events of one processor."""

    customers: dict[str, list[tuple[int, object, object]]] = field(
        default_factory=dict
    )  # party -> (valid_from ns, income, fico)
    offers: dict[int, tuple[str, str]] = field(default_factory=dict)
    rules_rows: dict[int, list[dict]] = field(default_factory=dict)
    pending: dict[str, tuple[int, list[dict]]] = field(default_factory=dict)  # party -> (activity partition, events)
    _rules: RuleSet | None = None
    _offers_frame: pd.DataFrame | None = None

    # ---------------------------------------------------------------- tables

    def add_customer_versions(self, parties: list[str], valid_from_ns: list[int], income: list, fico: list) -> set[str]:
        """Append customer versions (a record is a version; all are kept). Returns the
        customers who have events waiting: their record has arrived."""
        for p, t, i, f in zip(parties, valid_from_ns, income, fico):
            versions = self.customers.setdefault(p, [])
            versions.append((int(t), i, f))
            if len(versions) > 1 and versions[-2][0] > versions[-1][0]:  # a late version: keep time order
                versions.sort(key=lambda v: v[0])
        return {p for p in parties if p in self.pending}

    def set_offer(self, offer_id: int, value: dict | None) -> None:
        if value is None:
            self.offers.pop(offer_id, None)
        else:
            self.offers[offer_id] = (value["OFFER_NAME"], value["OFFER_URL"])
        self._offers_frame = None

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
    def offers_frame(self) -> pd.DataFrame:
        """The offers table; the recipe's five offers until one arrives (as the warehouse path)."""
        if self._offers_frame is None:
            if self.offers:
                ids = sorted(self.offers)
                self._offers_frame = pd.DataFrame(
                    {
                        "offer_id": ids,
                        "offer_name": [self.offers[i][0] for i in ids],
                        "offer_url": [self.offers[i][1] for i in ids],
                    }
                )
            else:
                self._offers_frame = pd.read_csv(DEFAULT_OFFERS_FILE)
        return self._offers_frame

    # ---------------------------------------------------------------- waiting events

    def restore_pending(self, party: str, partition: int, events: list[dict] | None) -> None:
        if events:
            self.pending[party] = (partition, events)
        else:
            self.pending.pop(party, None)

    def drop_pending_partitions(self, partitions: set[int]) -> None:
        """Forget the waiting events of activity partitions this processor no longer owns."""
        self.pending = {p: v for p, v in self.pending.items() if v[0] not in partitions}

    def take_pending(self, parties: set[str]) -> pd.DataFrame | None:
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
        frame["event_time"] = frame["event_time"].astype("int64").to_numpy().view("datetime64[ns]")
        return _events(frame)

    @property
    def pending_count(self) -> int:
        return sum(len(v[1]) for v in self.pending.values())

    # ---------------------------------------------------------------- one step

    def _versions(self, parties) -> pd.DataFrame:
        """Every version of these customers, as the model's customer versions."""
        rows = [(p, *v) for p in parties for v in self.customers.get(p, ())]
        party, valid_from, income, fico = (list(c) for c in zip(*rows)) if rows else ([], [], [], [])
        return pd.DataFrame(
            {
                "party_id": np.array(party, dtype=object),
                "valid_from": np.array(valid_from, dtype="int64").view("datetime64[ns]"),
                "income": pd.array(income, dtype="Int64"),
                "fico": pd.array(fico, dtype="Int64"),
            }
        )

    def step(self, events: pd.DataFrame) -> Step:
        """Offer every event whose customer is known (joined to the version valid at its
        time, or the first version if the record came later); the others wait."""
        events = events.reset_index(drop=True)
        # a dict lookup per event: Series.isin would hash every known customer on each batch
        customers = self.customers
        parties = events["party_id"].tolist()
        known = np.fromiter((p in customers for p in parties), dtype=bool, count=len(events))
        every = bool(known.all())
        versions = self._versions(list(dict.fromkeys(p for p, k in zip(parties, known) if k)))
        nbo, unknown = next_best_offers(
            events if every else events[known].reset_index(drop=True), versions, self.rules, BATCH_KEY
        )
        assert unknown.empty  # every event passed in has a customer version
        nbo_customer = events["customer_raw"].to_numpy(object)[known]
        rows, unmatched = lookup(nbo, self.offers_frame)
        found = ~nbo.index.isin(unmatched.index)
        changed = set()
        waiting = events[~known]
        if len(waiting):
            records = waiting.assign(event_time=waiting["event_time"].to_numpy("datetime64[ns]").view("int64")).to_dict(
                "records"
            )
            for r in records:
                partition, queued = self.pending.setdefault(r["party_id"], (int(r["partition"]), []))
                if not any(q["activity_id"] == r["activity_id"] for q in queued):  # a replayed wait
                    queued.append({k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()})
                changed.add(r["party_id"])
        return Step(nbo, nbo_customer, rows, nbo_customer[found], unmatched, changed)


def _events(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({"activity_id": "int64", "propensity_to_buy": "float64", "partition": "int64"})
