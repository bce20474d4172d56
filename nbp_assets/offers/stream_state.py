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

from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.offers.inputs import ACTIVITY_SOURCE, CUSTOMERS_SOURCE, events

SCHEMA = "nbp_offers"
NBO_TABLE = f"{SCHEMA}.next_best_offer"
CLAIMS_TABLE = f"{SCHEMA}.next_best_offer_claims"
PENDING_TABLE = f"{SCHEMA}.next_best_offer_pending"
OFFERS_TABLE = f"{SCHEMA}.offers"
RULES_TABLE = f"{SCHEMA}.offer_rules"
LOOKUP_TABLE = "product_intelligence.next_best_offer_lookup"

# Keys double as the tables' primary keys, so DuckDB itself refuses a second row per event.
NBO_DDL = f"""
CREATE TABLE IF NOT EXISTS {NBO_TABLE} (
    ACTIVITY_ID BIGINT NOT NULL PRIMARY KEY,
    CUSTOMER_ID VARCHAR NOT NULL,
    EVENT_TIME {{timestamp}} NOT NULL,
    PROPENSITY_TO_BUY DOUBLE NOT NULL,
    ACTIVITY_TYPE VARCHAR NOT NULL,
    INCOME BIGINT,
    FICO BIGINT,
    OFFER_ID BIGINT NOT NULL,
    RULES_VERSION BIGINT NOT NULL,
    RULE_PRIORITY BIGINT NOT NULL,
    CUSTOMER_VALID_FROM {{timestamp}} NOT NULL,
    BATCH_KEY VARCHAR NOT NULL
)
"""
LOOKUP_DDL = f"""
CREATE TABLE IF NOT EXISTS {LOOKUP_TABLE} (
    OFFER_ID BIGINT NOT NULL,
    ACTIVITY_ID BIGINT NOT NULL PRIMARY KEY,
    CUSTOMER_ID VARCHAR NOT NULL,
    PROPENSITY_TO_BUY DOUBLE NOT NULL,
    ACTIVITY_TYPE VARCHAR NOT NULL,
    INCOME BIGINT,
    FICO BIGINT,
    OFFER_NAME VARCHAR NOT NULL,
    OFFER_URL VARCHAR NOT NULL
)
"""
CLAIMS_DDL = f"""
CREATE TABLE IF NOT EXISTS {CLAIMS_TABLE} (
    BATCH_KEY VARCHAR NOT NULL,
    ACTIVITY_ID BIGINT NOT NULL,
    PRIMARY KEY (BATCH_KEY, ACTIVITY_ID)
)
"""

PENDING_DDL = f"""
CREATE TABLE IF NOT EXISTS {PENDING_TABLE} (
    ACTIVITY_ID BIGINT NOT NULL PRIMARY KEY,
    CUSTOMER_ID VARCHAR NOT NULL,
    EVENT_TIME {{timestamp}} NOT NULL,
    ACTIVITY_TYPE VARCHAR NOT NULL,
    PROPENSITY_TO_BUY DOUBLE NOT NULL,
    FIRST_SEEN_BATCH VARCHAR NOT NULL
)
"""

_BATCH_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def literal(batch_key: str) -> str:
    """The batch key as a SQL literal; keys are restricted so they never need escaping."""
    if not _BATCH_KEY.fullmatch(batch_key):
        raise ValueError(f"batch key {batch_key!r}: use letters, digits and _.:- (at most 64)")
    return f"'{batch_key}'"


def _ids(condition: str) -> str:
    """Subquery: activity_ids of landed events meeting `condition` (on alias a)."""
    return f"SELECT a.activity_id FROM {ACTIVITY_SOURCE} a WHERE {condition}"


def _not_offered(wh: WarehouseResource) -> str:
    if not wh.table_exists(NBO_TABLE):
        return "TRUE"
    return f"NOT EXISTS (SELECT 1 FROM {NBO_TABLE} o WHERE o.ACTIVITY_ID = a.activity_id)"


def _known(wh: WarehouseResource) -> str:
    if not wh.table_exists(CUSTOMERS_SOURCE):
        return "FALSE"
    return f"EXISTS (SELECT 1 FROM {CUSTOMERS_SOURCE} c WHERE c.party_id = a.party_id)"


def claimed(batch_key: str) -> str:
    """Predicate on activity: the events batch `batch_key` claimed."""
    return f"activity_id IN (SELECT ACTIVITY_ID FROM {CLAIMS_TABLE} WHERE BATCH_KEY = {literal(batch_key)})"


def claim(wh: WarehouseResource, batch_key: str, limit: int) -> tuple[int, int]:
    """Record what batch `batch_key` takes: its own earlier rows and up to `limit` ready
    events, oldest activity_id first. Returns (replayed, new)."""
    replay = pd.DataFrame({"ACTIVITY_ID": pd.Series(dtype="int64")})
    if wh.table_exists(NBO_TABLE):
        replay = wh.query(f"SELECT ACTIVITY_ID FROM {NBO_TABLE} WHERE BATCH_KEY = {literal(batch_key)}")
    new = pd.DataFrame({"ACTIVITY_ID": pd.Series(dtype="int64")})
    if wh.table_exists(ACTIVITY_SOURCE):
        new = wh.query(
            f"SELECT DISTINCT activity_id AS ACTIVITY_ID FROM ({_ids(f'{_not_offered(wh)} AND {_known(wh)}')} "
            f"ORDER BY a.activity_id LIMIT {int(limit)}) AS ready"
        )
    ids = pd.concat([replay, new], ignore_index=True).drop_duplicates()
    frame = pd.DataFrame({"BATCH_KEY": batch_key, "ACTIVITY_ID": ids["ACTIVITY_ID"].astype("int64")})
    wh.replace_slice(CLAIMS_TABLE, frame, where=f"BATCH_KEY = {literal(batch_key)}", ddl=CLAIMS_DDL)
    return len(replay), len(frame) - len(replay)


def batch_events(wh: WarehouseResource, batch_key: str) -> pd.DataFrame:
    return events(wh, claimed(batch_key))


def parties_of(batch_key: str) -> str:
    return f"SELECT party_id FROM {ACTIVITY_SOURCE} WHERE {claimed(batch_key)}"


def previous_rows(wh: WarehouseResource, batch_key: str) -> pd.DataFrame:
    """The rows batch `batch_key` wrote last time (empty on its first run)."""
    if not wh.table_exists(NBO_TABLE):
        return pd.DataFrame(columns=["ACTIVITY_ID", "OFFER_ID", "RULES_VERSION"])
    return wh.query(
        f"SELECT ACTIVITY_ID, OFFER_ID, RULES_VERSION FROM {NBO_TABLE} WHERE BATCH_KEY = {literal(batch_key)}"
    )


def write_offers(wh: WarehouseResource, batch_key: str, df: pd.DataFrame) -> int:
    key = literal(batch_key)
    return wh.replace_slice(
        NBO_TABLE,
        df,
        ddl=NBO_DDL,
        where=f"BATCH_KEY = {key} OR ACTIVITY_ID IN (SELECT ACTIVITY_ID FROM {CLAIMS_TABLE} WHERE BATCH_KEY = {key})",
    )


def pending_events(wh: WarehouseResource) -> pd.DataFrame:
    """Landed events without an offer whose customer has no record at all."""
    if not wh.table_exists(ACTIVITY_SOURCE):
        return pd.DataFrame(columns=["activity_id", "party_id", "event_time", "activity_type", "propensity_to_buy"])
    return events(wh, f"activity_id IN ({_ids(f'{_not_offered(wh)} AND NOT {_known(wh)}')})")


def write_pending(wh: WarehouseResource, pending: pd.DataFrame, batch_key: str) -> pd.DataFrame:
    """Replace the pending table; an event keeps the batch that first saw it."""
    first_seen = pd.Series(batch_key, index=pending.index, dtype=object)
    if wh.table_exists(PENDING_TABLE) and len(pending):
        before = wh.query(f"SELECT ACTIVITY_ID, FIRST_SEEN_BATCH FROM {PENDING_TABLE}")
        seen = pd.Series(before["FIRST_SEEN_BATCH"].to_numpy(object), index=before["ACTIVITY_ID"].astype("int64"))
        first_seen = pd.Series(
            seen.reindex(pending["activity_id"].astype("int64")).to_numpy(object), index=pending.index
        ).fillna(batch_key)
    table = pd.DataFrame(
        {
            "ACTIVITY_ID": pending["activity_id"].astype("int64").to_numpy(),
            "CUSTOMER_ID": pending["party_id"].to_numpy(object),
            "EVENT_TIME": pending["event_time"].to_numpy("datetime64[ns]"),
            "ACTIVITY_TYPE": pending["activity_type"].to_numpy(object),
            "PROPENSITY_TO_BUY": pending["propensity_to_buy"].to_numpy("float64"),
            "FIRST_SEEN_BATCH": first_seen.to_numpy(object),
        }
    )
    wh.replace_slice(PENDING_TABLE, table, where="TRUE", ddl=PENDING_DDL)
    return table


def _missing_from_lookup(wh: WarehouseResource) -> str:
    """Predicate on next_best_offer (alias o): the offer has no lookup row."""
    if not wh.table_exists(LOOKUP_TABLE):
        return "TRUE"
    return f"NOT EXISTS (SELECT 1 FROM {LOOKUP_TABLE} l WHERE l.ACTIVITY_ID = o.ACTIVITY_ID)"


def lookup_batches(wh: WarehouseResource, batch_key: str) -> list[str]:
    """This batch, and every batch with an offer missing from the lookup (a step that died)."""
    keys = {batch_key}
    if wh.table_exists(NBO_TABLE):
        behind = wh.query(f"SELECT DISTINCT o.BATCH_KEY FROM {NBO_TABLE} o WHERE {_missing_from_lookup(wh)}")
        keys |= set(behind["BATCH_KEY"])
    return sorted(keys)


def offer_rows(wh: WarehouseResource, batch_keys: list[str]) -> pd.DataFrame:
    if not wh.table_exists(NBO_TABLE):
        return pd.DataFrame(columns=["ACTIVITY_ID"])
    keys = ", ".join(literal(k) for k in batch_keys)
    return wh.query(f"SELECT * FROM {NBO_TABLE} WHERE BATCH_KEY IN ({keys}) ORDER BY ACTIVITY_ID")


def write_lookup(wh: WarehouseResource, df: pd.DataFrame, batch_keys: list[str]) -> int:
    keys = ", ".join(literal(k) for k in batch_keys)
    return wh.replace_slice(
        LOOKUP_TABLE,
        df,
        ddl=LOOKUP_DDL,
        where=f"ACTIVITY_ID IN (SELECT ACTIVITY_ID FROM {NBO_TABLE} WHERE BATCH_KEY IN ({keys}))",
    )


def _count(wh: WarehouseResource, table: str, what: str = "count(*)") -> str:
    return f"(SELECT {what} FROM {table})" if wh.table_exists(table) else "0"


def fingerprint(wh: WarehouseResource) -> list[int]:
    """Cheap counts (metadata-only in Snowflake) that change whenever there may be work."""
    row = wh.query(
        f"SELECT {_count(wh, ACTIVITY_SOURCE)} AS landed, "
        f"{_count(wh, ACTIVITY_SOURCE, 'coalesce(max(activity_id), 0)')} AS max_id, "
        f"{_count(wh, CUSTOMERS_SOURCE)} AS customers, {_count(wh, NBO_TABLE)} AS offered, "
        f"{_count(wh, LOOKUP_TABLE)} AS looked_up"
    ).iloc[0]
    return [int(v) for v in row]


def backlog(wh: WarehouseResource) -> dict[str, int]:
    """ready: events a batch would offer now; pending: events waiting for a customer record;
    lookup_gap: offers not yet in the lookup."""
    if not wh.table_exists(ACTIVITY_SOURCE):
        return {"ready": 0, "pending": 0, "lookup_gap": 0}
    gap = "0"
    if wh.table_exists(NBO_TABLE):
        gap = f"(SELECT count(*) FROM {NBO_TABLE} o WHERE {_missing_from_lookup(wh)})"
    row = wh.query(
        f"SELECT (SELECT count(*) FROM {ACTIVITY_SOURCE} a WHERE {_not_offered(wh)} AND {_known(wh)}) AS ready, "
        f"(SELECT count(*) FROM {ACTIVITY_SOURCE} a WHERE {_not_offered(wh)} AND NOT {_known(wh)}) AS pending, "
        f"{gap} AS lookup_gap"
    ).iloc[0]
    return {k: int(v) for k, v in row.items()}
