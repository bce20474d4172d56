"""The recipe's topics, their creation, and the JSON messages on them.

| topic | key (UTF-8 text) | value (JSON) | kind |
|---|---|---|---|
| CUSTOMER_ACTIVITY_STREAM | CUSTOMER_ID | ACTIVITY_ID, IP_ADDRESS, CUSTOMER_ID (optional: the key), ACTIVITY_TYPE, PROPENSITY_TO_BUY | stream; event time = the record's timestamp |
| CUSTOMERS_TABLE | CUSTOMER_ID | the recipe's columns, optional VALID_FROM (bank-local ISO time; default the record's timestamp) | every record is a new version, all kept |
| OFFERS_STREAM | OFFER_ID | OFFER_ID, OFFER_NAME, OFFER_URL | table: the latest per key |
| NEXT_BEST_OFFER_RULES | rules_version | {"rules_version", "rows": [the version's rows of the rules table]} | table |
| NEXT_BEST_OFFER | ACTIVITY_ID | the recipe's fields + EVENT_TIME, RULES_VERSION, RULE_PRIORITY, CUSTOMER_VALID_FROM | output |
| NEXT_BEST_OFFER_LOOKUP | ACTIVITY_ID | exactly the recipe's nine fields | output |
| NEXT_BEST_OFFER_PENDING | CUSTOMER_ID | the customer's events waiting for a record (null once offered) | the processor's changelog; partition n belongs to activity partition n |
| CUSTOMER_ACTIVITY_REJECTED | as received | a refused message as received; headers nbp.reason, nbp.topic, nbp.partition, nbp.offset, nbp.size | dead letters (offers/stream/deadletter.py) |

Outputs are keyed by ACTIVITY_ID: a replay after a crash produces the same key and value
again, so every reader (and the warehouse sink) drops the duplicate by key.
"""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pandas as pd

from nbp_assets.contract.tables import NEXT_BEST_OFFER, NEXT_BEST_OFFER_LOOKUP, Table

ACTIVITY = "CUSTOMER_ACTIVITY_STREAM"
CUSTOMERS = "CUSTOMERS_TABLE"
OFFERS = "OFFERS_STREAM"
RULES = "NEXT_BEST_OFFER_RULES"
NBO = "NEXT_BEST_OFFER"
LOOKUP = "NEXT_BEST_OFFER_LOOKUP"
PENDING = "NEXT_BEST_OFFER_PENDING"
REJECTED = "CUSTOMER_ACTIVITY_REJECTED"  # activity messages that are not the recipe's JSON

TABLE_TOPICS = (CUSTOMERS, OFFERS, RULES)
COMPACTED = (CUSTOMERS, OFFERS, RULES, PENDING)  # CUSTOMERS_TABLE: versions are kept, see retention below
TIMEZONE = "Europe/London"  # event times are bank-local wall time, as the activity contract says
_ZONE = ZoneInfo(TIMEZONE)

# The JSON field order of the two outputs, declared with their tables (contract/tables.py).
NBO_FIELDS = list(NEXT_BEST_OFFER.message_fields)
LOOKUP_FIELDS = list(NEXT_BEST_OFFER_LOOKUP.message_fields)


def name(topic: str, prefix: str = "") -> str:
    return f"{prefix}{topic}"


def topic_configs(topic: str) -> dict[str, str]:
    # CUSTOMERS_TABLE keeps every version (point-in-time joins of replayed events need
    # them): delete policy with infinite retention, not compaction, which would keep only
    # the latest version per customer.
    if topic == CUSTOMERS:
        return {"cleanup.policy": "delete", "retention.ms": "-1"}
    if topic in COMPACTED:
        return {"cleanup.policy": "compact", "retention.ms": "-1"}
    return {"cleanup.policy": "delete", "retention.ms": str(7 * 86_400_000)}


def ensure_topics(
    admin_conf: dict, prefix: str = "", partitions: int = 6, replication: int = 1, timeout: float = 30.0
) -> list[str]:
    """Create the recipe's topics that do not exist yet (explicitly: auto-created topics get
    the broker's partition count, and the activity and pending topics must match). Returns
    the topics created."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(admin_conf)
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        t
        for t in (ACTIVITY, CUSTOMERS, OFFERS, RULES, NBO, LOOKUP, PENDING, REJECTED)
        if name(t, prefix) not in existing
    ]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(name(t, prefix), partitions, replication, config=topic_configs(t)) for t in wanted],
        operation_timeout=timeout,
    )
    for topic, future in futures.items():
        try:
            future.result()
        except Exception as exc:  # created meanwhile by another process: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return [name(t, prefix) for t in wanted]


def create_plain_topics(admin_conf: dict, names: list[str], partitions: int, timeout: float = 30.0) -> None:
    """Topics outside the recipe (the benchmark's floor measurement), with default configs."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(admin_conf)  # kept referenced until the futures resolve
    for future in admin.create_topics([NewTopic(x, partitions, 1) for x in names]).values():
        future.result(timeout)


# ----------------------------------------------------------------------------- codecs


def loads_many(values: list[bytes]) -> list:
    """Decode many JSON messages in one parser call (a JSON array of them)."""
    return orjson.loads(b"[" + b",".join(values) + b"]")


def local_time(ms: np.ndarray | list[int]) -> np.ndarray:
    """Kafka record timestamps (ms since epoch, UTC) as bank-local naive datetime64[ns]."""
    ms = np.asarray(ms, dtype="int64")
    if len(ms) and ms.max() - ms.min() < 86_400_000:
        # A micro-batch spans less than a day (clock changes are months apart): when its first
        # and last events have the same UTC offset, so do all between; add it, don't convert.
        lo, hi = (datetime.fromtimestamp(int(x) / 1000, _ZONE).utcoffset() for x in (ms.min(), ms.max()))
        if lo == hi:
            return (ms * 1_000_000 + int(lo.total_seconds()) * 1_000_000_000).view("datetime64[ns]")
    t = pd.to_datetime(ms, unit="ms", utc=True).tz_convert(TIMEZONE).tz_localize(None)
    return t.to_numpy("datetime64[ns]")


# The recipe's activity object is ~150 bytes: a message over this is rejected unparsed (a
# 1 MB "event" is a producer's bug, and parsing it would stall the batch it arrived in).
MAX_ACTIVITY_BYTES = 64 * 1024
_NUMBER = {int, float}


class BadRecord(ValueError):
    """A message that is not the recipe's: the reason goes into its dead letter."""


def _require(ok: bool, reason: str) -> None:
    if not ok:
        raise BadRecord(reason)


def _types(values: list, allowed: set, field: str, what: str) -> set:
    """The types found (a C-level pass, no Python per record); raises if one is not allowed."""
    found = set(map(type, values))
    _require(found <= allowed, f"{field}: {what}, found {' or '.join(sorted(x.__name__ for x in found - allowed))}")
    return found


def _utf8(keys: list[bytes | None]) -> list[str | None]:
    """Keys as text (raises on invalid UTF-8): one decode of them all when none is missing."""
    if None not in keys:
        parts = b"\0".join(keys).decode().split("\0")
        if len(parts) == len(keys):  # else a key holds NUL itself
            return parts
    return [k.decode() if k is not None else None for k in keys]


def reason(exc: Exception) -> str:
    """Why one record was refused, for its dead letter's header and the log."""
    if isinstance(exc, BadRecord):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text: {exc}"
    if isinstance(exc, orjson.JSONDecodeError):
        return f"not JSON: {exc}"
    return f"{type(exc).__name__}: {exc}"


def sort_out(decode, msgs) -> tuple[object, list[tuple[object, str]]]:
    """decode(msgs) on the whole batch, and no message refused; if that fails, each message
    alone, so that only the bad ones are refused (any error refuses that message), each with
    its reason, and the rest decoded together. Returns (decoded, [(message, reason)])."""
    try:
        return decode(msgs), []
    except Exception:
        good, refused = [], []
        for m in msgs:
            try:
                decode([m])
                good.append(m)
            except Exception as exc:
                refused.append((m, reason(exc)))
        return decode(good), refused


def decode_activity(msgs) -> tuple[dict[str, np.ndarray], list[tuple[object, str]]]:
    """Activity messages as event columns, and the ones that are not the recipe's JSON object
    with the reason for each."""
    return sort_out(_activity_batch, msgs)


def _activity_batch(msgs) -> dict[str, np.ndarray]:
    values = [m.value() for m in msgs]
    _require(None not in values, "no value (null message)")
    _require(not values or max(map(len, values)) <= MAX_ACTIVITY_BYTES, f"over {MAX_ACTIVITY_BYTES:,} bytes")
    records = loads_many(values)
    return activity_columns(
        records, [m.key() for m in msgs], [m.timestamp()[1] for m in msgs], [m.partition() for m in msgs]
    )


def activity_columns(
    records: list[dict], keys: list[bytes | None], timestamps: list[int], partitions: list[int]
) -> dict[str, np.ndarray]:
    """Activity messages as the offer model's event columns (activity contract names) plus
    CUSTOMER_ID as it came (an integer stays an integer in the outputs) and the partition.
    Raises (BadRecord, KeyError, ...) if any record is not the recipe's JSON object: the
    ksqlDB schema's types (PROPENSITY_TO_BUY a JSON number, never text) and the activity
    contract's range (0 to 1), a key that agrees with CUSTOMER_ID."""
    _types(records, {dict}, "value", "a JSON object")
    # one comprehension per field: the records are parsed JSON objects, there is no column
    # form to take them from; the type checks are C-level passes over those lists
    ids = [r["ACTIVITY_ID"] for r in records]
    _types(ids, {int}, "ACTIVITY_ID", "a JSON integer")
    propensity = [r["PROPENSITY_TO_BUY"] for r in records]
    _types(propensity, _NUMBER, "PROPENSITY_TO_BUY", "a JSON number (the recipe's DOUBLE; text is refused)")
    propensity = np.array(propensity, dtype="float64")
    _require(bool(((propensity >= 0) & (propensity <= 1)).all()), "PROPENSITY_TO_BUY: outside 0 to 1")
    kinds = [r["ACTIVITY_TYPE"] for r in records]
    _types(kinds, {str}, "ACTIVITY_TYPE", "JSON text")
    ips = [r.get("IP_ADDRESS") for r in records]
    _types(ips, {str, type(None)}, "IP_ADDRESS", "JSON text or null")
    raw = [r.get("CUSTOMER_ID") for r in records]
    given = _types(raw, {str, int, type(None)}, "CUSTOMER_ID", "JSON text or integer")
    text_keys = _utf8(keys)
    if type(None) in given:
        raw = [c if c is not None else k for c, k in zip(raw, text_keys)]
        _require(None not in raw, "no CUSTOMER_ID and no key")
    party = raw if given == {str} else list(map(str, raw))
    _require(party == _keyed(text_keys, party), "the key disagrees with CUSTOMER_ID")
    return {
        "activity_id": np.array(ids, dtype="int64"),
        "party_id": np.array(party, dtype=object),
        "event_time": local_time(timestamps),
        "activity_type": np.array(kinds, dtype=object),
        "propensity_to_buy": propensity,
        "ip_address": np.array(ips, dtype=object),
        "customer_raw": np.array(raw, dtype=object),
        "partition": np.asarray(partitions, dtype="int64"),
    }


def _keyed(keys: list[str | None], party: list[str]) -> list[str]:
    """The keys, with the customer in place of a missing key (a message without a key agrees)."""
    if None not in keys:  # the usual case: compared as whole lists, in C
        return keys
    return [p if k is None else k for k, p in zip(keys, party)]


def customer_versions(msgs) -> tuple[list[str], list[int], list, list]:
    """CUSTOMERS_TABLE records (none a tombstone) as (CUSTOMER_ID, VALID_FROM ns, INCOME,
    FICO) lists. Raises if any record is not a JSON object with the recipe's INTEGER income
    and FICO (or null), a key that agrees with CUSTOMER_ID, a VALID_FROM that is a time."""
    values = loads_many([m.value() for m in msgs])
    _types(values, {dict}, "value", "a JSON object")
    raw = [v.get("CUSTOMER_ID") for v in values]
    _types(raw, {str, int, type(None)}, "CUSTOMER_ID", "JSON text or integer")
    keys = _utf8([m.key() for m in msgs])
    raw = [c if c is not None else k for c, k in zip(raw, keys)]
    _require(None not in raw, "no CUSTOMER_ID and no key")
    party = list(map(str, raw))
    _require(party == _keyed(keys, party), "the key disagrees with CUSTOMER_ID")
    income, fico = [v.get("INCOME") for v in values], [v.get("FICO") for v in values]
    _types(income, {int, type(None)}, "INCOME", "a JSON integer or null")
    _types(fico, {int, type(None)}, "FICO", "a JSON integer or null")
    given = [v.get("VALID_FROM") for v in values]
    _types(given, {str, type(None)}, "VALID_FROM", "an ISO time as JSON text, or null")
    stamp = local_time([m.timestamp()[1] for m in msgs]).view("int64")
    given = pd.to_datetime(pd.Series(given, dtype=object)).to_numpy("datetime64[ns]")
    valid_from = np.where(np.isnat(given), stamp, given.view("int64"))
    return party, valid_from.tolist(), income, fico


def offer_record(msg) -> tuple[int, dict | None]:
    """An OFFERS_STREAM record as (OFFER_ID, value; None deletes the offer)."""
    offer_id = int(msg.key())
    if msg.value() is None:
        return offer_id, None
    value = orjson.loads(msg.value())
    _types([value], {dict}, "value", "a JSON object")
    _types([value["OFFER_NAME"], value["OFFER_URL"]], {str}, "OFFER_NAME and OFFER_URL", "JSON text")
    _require(value.get("OFFER_ID", offer_id) == offer_id, "the key disagrees with OFFER_ID")
    return offer_id, value


def rules_record(msg) -> tuple[int, list[dict] | None]:
    """A NEXT_BEST_OFFER_RULES record as (rules version, its rows; None deletes the version)."""
    version = int(msg.key())
    if msg.value() is None:
        return version, None
    value = orjson.loads(msg.value())
    _types([value], {dict}, "value", "a JSON object")
    _types([value["rows"]], {list}, "rows", "a JSON array")
    _require(value.get("rules_version", version) == version, "the key disagrees with rules_version")
    return version, value["rows"]


def json_lines(frame: pd.DataFrame) -> list[bytes]:
    """One JSON object per row, by pandas' C serialiser (no per-row Python)."""
    if frame.empty:
        return []
    # 15 significant digits (pandas' most): a replayed offer must carry the same value
    text = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="ms", double_precision=15)
    return [line.encode() for line in text.split("\n") if line]


def _json_values(values: np.ndarray) -> list:
    """A column as the Python values orjson writes: ISO text to the millisecond for times
    (as pandas wrote them), NULL for NaT."""
    if values.dtype.kind == "M":
        text = np.datetime_as_string(values.astype("datetime64[ms]"), unit="ms").astype(object)
        text[np.isnat(values)] = None
        return text.tolist()
    return values.tolist()  # orjson writes a float NaN as null


def _row_values(columns: dict[str, np.ndarray], fields: list[str]) -> list[list]:
    """The columns as lists of the Python values orjson writes, in `fields` order. INCOME and
    FICO (float64 with NaN for NULL) become whole numbers or None."""
    values = []
    for f in fields:
        column = columns[f]
        if f in ("INCOME", "FICO"):
            null = np.isnan(column)
            whole = np.where(null, 0, column).astype("int64").astype(object)
            whole[null] = None
            values.append(whole.tolist())
        else:
            values.append(_json_values(column))
    return values


def _message_writer(fields: list[str]):
    """writer(columns): one JSON object per row with `fields` in this order, from
    _row_values(columns, fields). It is one dict literal per message, a third cheaper than
    dict(zip(fields, row)) for the tens of thousands of messages of a busy batch, so its code
    is generated here from the declared field list (names quoted with repr) rather than
    spelling the fields a second time. Floats are written shortest-exact (a replayed offer
    carries the same text; PROPENSITY_TO_BUY as it came); test_offer_kafka compares the
    bytes with pandas' writer over the same fields."""
    names = [f"v{i}" for i in range(len(fields))]
    literal = ", ".join(f"{f!r}: {n}" for f, n in zip(fields, names))
    code = f"lambda dumps, values: [dumps({{{literal}}}) for {', '.join(names)}, in zip(*values)]"
    write = eval(compile(code, f"<{' '.join(fields)}>", "eval"), {})
    return lambda columns: write(orjson.dumps, _row_values(columns, fields))


_write_nbo = _message_writer(NBO_FIELDS)
_write_lookup = _message_writer(LOOKUP_FIELDS)


def nbo_messages(nbo: dict[str, np.ndarray]) -> list[bytes]:
    return _write_nbo(nbo)


def lookup_messages(rows: dict[str, np.ndarray]) -> list[bytes]:
    return _write_lookup(rows)


def _table_rows(values: list[bytes], table: Table) -> pd.DataFrame:
    """Messages of `table`'s topic as the table's rows, typed by its declaration: whole
    numbers int64 (Int64 where nullable), times from ISO text, CUSTOMER_ID as text."""
    fields = list(table.message_fields)
    frame = pd.DataFrame.from_records(loads_many(values), columns=fields)
    types: dict[str, object] = {}
    for f in fields:
        dtype = table.dtypes()[f]
        if dtype.startswith("datetime64"):
            frame[f] = pd.to_datetime(frame[f], format="ISO8601")
        elif dtype == "Int64":
            types[f] = "Int64" if table.nullable(f) else "int64"
        elif dtype == "float64":
            types[f] = dtype
    return frame.astype(types | {"CUSTOMER_ID": str})


def lookup_frame(values: list[bytes]) -> pd.DataFrame:
    """NEXT_BEST_OFFER_LOOKUP messages as the warehouse table's rows (CUSTOMER_ID as text)."""
    return _table_rows(values, NEXT_BEST_OFFER_LOOKUP)


def nbo_frame(values: list[bytes]) -> pd.DataFrame:
    """NEXT_BEST_OFFER messages as the warehouse next_best_offer table's rows (BATCH_KEY 'kafka')."""
    return _table_rows(values, NEXT_BEST_OFFER).assign(BATCH_KEY="kafka")[NEXT_BEST_OFFER.columns]


def rules_message(version: pd.DataFrame) -> tuple[bytes, bytes]:
    """(key, value) of one rules version."""
    rows = json.loads(version.to_json(orient="records", date_format="iso"))
    number = int(version["rules_version"].iloc[0])
    return str(number).encode(), json.dumps({"rules_version": number, "rows": rows}).encode()


def offer_message(offer_id: int, name_: str, url: str) -> tuple[bytes, bytes]:
    return str(offer_id).encode(), json.dumps({"OFFER_ID": offer_id, "OFFER_NAME": name_, "OFFER_URL": url}).encode()
