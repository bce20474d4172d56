"""The offer stream's state in the warehouse, and why no event is ever offered twice.

Tables (schema nbp_offers unless named):
- next_best_offer: one row per offered event, keyed by ACTIVITY_ID, with the BATCH_KEY of
  the micro-batch that offered it.
- next_best_offer_claims: (BATCH_KEY, ACTIVITY_ID) for every event a batch set out to
  offer. A batch writes its claims first, then replaces, in one transaction, its own
  rows and any row of an event it claimed. So whatever runs twice, concurrently or after
  a crash, each event keeps exactly one row: the last writer's, computed the same way.
- next_best_offer_pending: events whose customer has no record yet (the recipe's INNER
  JOIN would drop them), as of the last batch, with the batch that first saw each.
- product_intelligence.next_best_offer_lookup: the recipe's final stream, rebuilt batch by
  batch from next_best_offer, including any batch whose lookup step never finished.

An event is "ready" when it has no offer row and its customer has a record; a batch takes
the ready events, plus on a re-run its own earlier rows. The landing table is append-only.
"""

from __future__ import annotations

import re

import pandas as pd

from nbp_assets.contract.offers import FROM_EVENT
from nbp_assets.contract.tables import (
    NEXT_BEST_OFFER,
    NEXT_BEST_OFFER_CLAIMS,
    NEXT_BEST_OFFER_LOOKUP,
    NEXT_BEST_OFFER_PENDING,
)
from nbp_assets.core import sql
from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.offers.inputs import ACTIVITY_SOURCE, CUSTOMERS_SOURCE, events

SCHEMA = "nbp_offers"
# the outputs' names and DDL come from their one declaration (contract/tables.py)
NBO_TABLE = NEXT_BEST_OFFER.name
CLAIMS_TABLE = NEXT_BEST_OFFER_CLAIMS.name
PENDING_TABLE = NEXT_BEST_OFFER_PENDING.name
LOOKUP_TABLE = NEXT_BEST_OFFER_LOOKUP.name
OFFERS_TABLE = f"{SCHEMA}.offers"
RULES_TABLE = f"{SCHEMA}.offer_rules"

# Keys double as the tables' primary keys, so DuckDB itself refuses a second row per event.
NBO_DDL = NEXT_BEST_OFFER.ddl_template()
LOOKUP_DDL = NEXT_BEST_OFFER_LOOKUP.ddl_template()
CLAIMS_DDL = NEXT_BEST_OFFER_CLAIMS.ddl_template()
PENDING_DDL = NEXT_BEST_OFFER_PENDING.ddl_template()

_BATCH_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def checked_key(batch_key: str) -> str:
    """The batch key, checked: keys are restricted so they never need escaping."""
    if not _BATCH_KEY.fullmatch(batch_key):
        raise ValueError(f"batch key {batch_key!r}: use letters, digits and _.:- (at most 64)")
    return batch_key


def _sql(name: str, **params) -> str:
    """offers/sql/<name>.sql rendered (core/sql.py); Python never writes the query text."""
    return sql.render("offers", name, **params).text


def _present(wh: WarehouseResource, table: str) -> str | None:
    """The table, or None while it does not exist (the queries read it as empty)."""
    return table if wh.table_exists(table) else None


def _state(wh: WarehouseResource) -> dict[str, str | None]:
    """The relations the state's queries read."""
    return {
        "activity": ACTIVITY_SOURCE,
        "offers": _present(wh, NBO_TABLE),
        "customers": _present(wh, CUSTOMERS_SOURCE),
        "lookup": _present(wh, LOOKUP_TABLE),
    }


def claimed(batch_key: str) -> str:
    """Predicate on activity: the events batch `batch_key` claimed."""
    return _sql("claimed", claims=CLAIMS_TABLE, batch_key=checked_key(batch_key))


def claim(wh: WarehouseResource, batch_key: str, limit: int) -> tuple[int, int]:
    """Record what batch `batch_key` takes: its own earlier rows and up to `limit` ready
    events, oldest activity_id first. Returns (replayed, new)."""
    replay = pd.DataFrame({"ACTIVITY_ID": pd.Series(dtype="int64")})
    if wh.table_exists(NBO_TABLE):
        replay = wh.query(
            _sql("batch_rows", offers=NBO_TABLE, columns=["ACTIVITY_ID"], batch_key=checked_key(batch_key))
        )
    new = pd.DataFrame({"ACTIVITY_ID": pd.Series(dtype="int64")})
    if wh.table_exists(ACTIVITY_SOURCE):
        new = wh.query(_sql("ready_events", **_state(wh), limit=int(limit)))
    ids = pd.concat([replay, new], ignore_index=True).drop_duplicates()
    frame = pd.DataFrame({"BATCH_KEY": batch_key, "ACTIVITY_ID": ids["ACTIVITY_ID"].astype("int64")})
    wh.replace_slice(CLAIMS_TABLE, frame, where=_sql("batch_key_is", batch_key=checked_key(batch_key)), ddl=CLAIMS_DDL)
    return len(replay), len(frame) - len(replay)


def batch_events(wh: WarehouseResource, batch_key: str) -> pd.DataFrame:
    return events(wh, claimed(batch_key))


def parties_of(batch_key: str) -> str:
    return _sql("parties_of", activity=ACTIVITY_SOURCE, claims=CLAIMS_TABLE, batch_key=checked_key(batch_key))


def previous_rows(wh: WarehouseResource, batch_key: str) -> pd.DataFrame:
    """The rows batch `batch_key` wrote last time (empty on its first run)."""
    columns = ["ACTIVITY_ID", "OFFER_ID", "RULES_VERSION"]
    if not wh.table_exists(NBO_TABLE):
        return pd.DataFrame(columns=columns)
    return wh.query(_sql("batch_rows", offers=NBO_TABLE, columns=columns, batch_key=checked_key(batch_key)))


def write_offers(wh: WarehouseResource, batch_key: str, df: pd.DataFrame) -> int:
    where = _sql("rows_of_batch", claims=CLAIMS_TABLE, batch_key=checked_key(batch_key))
    return wh.replace_slice(NBO_TABLE, df, ddl=NBO_DDL, where=where)


def pending_events(wh: WarehouseResource) -> pd.DataFrame:
    """Landed events without an offer whose customer has no record at all."""
    if not wh.table_exists(ACTIVITY_SOURCE):
        return pd.DataFrame(columns=list(FROM_EVENT))
    return events(wh, _sql("pending", **_state(wh)))


# numpy types of the pending table's columns (as written since the first version)
_PENDING_TYPES = {
    c: {"Int64": "int64", "object": object}.get(t, t) for c, t in NEXT_BEST_OFFER_PENDING.dtypes().items()
}


def write_pending(wh: WarehouseResource, pending: pd.DataFrame, batch_key: str) -> pd.DataFrame:
    """Replace the pending table; an event keeps the batch that first saw it."""
    first_seen = pd.Series(batch_key, index=pending.index, dtype=object)
    if wh.table_exists(PENDING_TABLE) and len(pending):
        before = wh.query(_sql("first_seen", pending=PENDING_TABLE))
        seen = pd.Series(before["FIRST_SEEN_BATCH"].to_numpy(object), index=before["ACTIVITY_ID"].astype("int64"))
        first_seen = pd.Series(
            seen.reindex(pending["activity_id"].astype("int64")).to_numpy(object), index=pending.index
        ).fillna(batch_key)
    table = pd.DataFrame({to: pending[name].to_numpy() for name, to in FROM_EVENT.items()})
    table["FIRST_SEEN_BATCH"] = first_seen.to_numpy(object)
    table = table.astype(_PENDING_TYPES)[NEXT_BEST_OFFER_PENDING.columns]
    wh.replace_slice(PENDING_TABLE, table, where=_sql("every_row"), ddl=PENDING_DDL)
    return table


def lookup_batches(wh: WarehouseResource, batch_key: str) -> list[str]:
    """This batch, and every batch with an offer missing from the lookup (a step that died)."""
    keys = {batch_key}
    if wh.table_exists(NBO_TABLE):
        behind = wh.query(_sql("behind_lookup", offers=NBO_TABLE, lookup=_present(wh, LOOKUP_TABLE)))
        keys |= set(behind["BATCH_KEY"])
    return sorted(keys)


def offer_rows(wh: WarehouseResource, batch_keys: list[str]) -> pd.DataFrame:
    if not wh.table_exists(NBO_TABLE):
        return pd.DataFrame(columns=["ACTIVITY_ID"])
    return wh.query(_sql("offer_rows", offers=NBO_TABLE, batch_keys=[checked_key(k) for k in batch_keys]))


def write_lookup(wh: WarehouseResource, df: pd.DataFrame, batch_keys: list[str]) -> int:
    where = _sql("lookup_of_batches", offers=NBO_TABLE, batch_keys=[checked_key(k) for k in batch_keys])
    return wh.replace_slice(LOOKUP_TABLE, df, ddl=LOOKUP_DDL, where=where)


def fingerprint(wh: WarehouseResource) -> list[int]:
    """Cheap counts (metadata-only in Snowflake) that change whenever there may be work."""
    state = _state(wh) | {"activity": _present(wh, ACTIVITY_SOURCE)}
    row = wh.query(_sql("fingerprint", **state)).iloc[0]
    return [int(v) for v in row]


def backlog(wh: WarehouseResource) -> dict[str, int]:
    """ready: events a batch would offer now; pending: events waiting for a customer record;
    lookup_gap: offers not yet in the lookup."""
    if not wh.table_exists(ACTIVITY_SOURCE):
        return {"ready": 0, "pending": 0, "lookup_gap": 0}
    row = wh.query(_sql("backlog", **_state(wh))).iloc[0]
    return {k: int(v) for k, v in row.items()}


def last_offered_time(wh: WarehouseResource):
    """The latest EVENT_TIME offered; None when nothing is."""
    if not wh.table_exists(NBO_TABLE):
        return None
    return wh.query(_sql("last_offered_time", offers=NBO_TABLE))["t"].iloc[0]


def read_table(wh: WarehouseResource, table: str, order_by: str | None = None) -> pd.DataFrame:
    """Every row of a published table (the offers, the rules)."""
    return wh.query(sql.render("core", "select", columns="*", relation=table, order_by=order_by).text)
