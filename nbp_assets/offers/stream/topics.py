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

from nbp_assets.offers.model import LOOKUP_COLUMNS, NBO_COLUMNS

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

NBO_FIELDS = [
    "ACTIVITY_ID",
    "CUSTOMER_ID",
    "PROPENSITY_TO_BUY",
    "ACTIVITY_TYPE",
    "INCOME",
    "FICO",
    "OFFER_ID",
    "EVENT_TIME",
    "RULES_VERSION",
    "RULE_PRIORITY",
    "CUSTOMER_VALID_FROM",
]
# the recipe's NEXT_BEST_OFFER_LOOKUP fields: the same columns as the warehouse lookup table
LOOKUP_FIELDS = LOOKUP_COLUMNS


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


def activity_columns(
    records: list[dict], keys: list[bytes | None], timestamps: list[int], partitions: list[int]
) -> dict[str, np.ndarray]:
    """Activity messages as the offer model's event columns (activity contract names) plus
    CUSTOMER_ID as it came (an integer stays an integer in the outputs) and the partition."""
    # one comprehension per field: the records are parsed JSON objects, there is no column
    # form to take them from
    raw = [r.get("CUSTOMER_ID") for r in records]
    raw = [c if c is not None else (k.decode() if k is not None else None) for c, k in zip(raw, keys)]
    return {
        "activity_id": np.array([r["ACTIVITY_ID"] for r in records], dtype="int64"),
        "party_id": np.array([str(c) for c in raw], dtype=object),
        "event_time": local_time(timestamps),
        "activity_type": np.array([r["ACTIVITY_TYPE"] for r in records], dtype=object),
        "propensity_to_buy": np.array([r["PROPENSITY_TO_BUY"] for r in records], dtype="float64"),
        "ip_address": np.array([r.get("IP_ADDRESS") for r in records], dtype=object),
        "customer_raw": np.array(raw, dtype=object),
        "partition": np.asarray(partitions, dtype="int64"),
    }


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


# One dict literal per message: a third cheaper than dict(zip(fields, row)) for the tens of
# thousands of messages of a busy batch. Floats are written shortest-exact (a replayed offer
# carries the same text; PROPENSITY_TO_BUY as it came). The field order is NBO_FIELDS and
# LOOKUP_FIELDS (test_offer_kafka compares the bytes with pandas' writer over those lists).


def nbo_messages(nbo: dict[str, np.ndarray]) -> list[bytes]:
    dumps = orjson.dumps
    return [
        dumps(
            {
                "ACTIVITY_ID": a,
                "CUSTOMER_ID": c,
                "PROPENSITY_TO_BUY": p,
                "ACTIVITY_TYPE": y,
                "INCOME": i,
                "FICO": f,
                "OFFER_ID": o,
                "EVENT_TIME": e,
                "RULES_VERSION": rv,
                "RULE_PRIORITY": rp,
                "CUSTOMER_VALID_FROM": vf,
            }
        )
        for a, c, p, y, i, f, o, e, rv, rp, vf in zip(*_row_values(nbo, NBO_FIELDS))
    ]


def lookup_messages(rows: dict[str, np.ndarray]) -> list[bytes]:
    dumps = orjson.dumps
    return [
        dumps(
            {
                "OFFER_ID": o,
                "ACTIVITY_ID": a,
                "CUSTOMER_ID": c,
                "PROPENSITY_TO_BUY": p,
                "ACTIVITY_TYPE": y,
                "INCOME": i,
                "FICO": f,
                "OFFER_NAME": n,
                "OFFER_URL": u,
            }
        )
        for o, a, c, p, y, i, f, n, u in zip(*_row_values(rows, LOOKUP_FIELDS))
    ]


def lookup_frame(values: list[bytes]) -> pd.DataFrame:
    """NEXT_BEST_OFFER_LOOKUP messages as the warehouse table's rows (CUSTOMER_ID as text)."""
    frame = pd.DataFrame.from_records(loads_many(values), columns=LOOKUP_FIELDS)
    return frame.astype(
        {
            "OFFER_ID": "int64",
            "ACTIVITY_ID": "int64",
            "CUSTOMER_ID": str,
            "PROPENSITY_TO_BUY": "float64",
            "INCOME": "Int64",
            "FICO": "Int64",
        }
    )


def nbo_frame(values: list[bytes]) -> pd.DataFrame:
    """NEXT_BEST_OFFER messages as the warehouse next_best_offer table's rows (BATCH_KEY 'kafka')."""
    frame = pd.DataFrame.from_records(loads_many(values), columns=NBO_FIELDS)
    for c in ("EVENT_TIME", "CUSTOMER_VALID_FROM"):
        frame[c] = pd.to_datetime(frame[c], format="ISO8601")
    frame = frame.astype(
        {
            "ACTIVITY_ID": "int64",
            "CUSTOMER_ID": str,
            "PROPENSITY_TO_BUY": "float64",
            "INCOME": "Int64",
            "FICO": "Int64",
            "OFFER_ID": "int64",
            "RULES_VERSION": "int64",
            "RULE_PRIORITY": "int64",
        }
    )
    return frame.assign(BATCH_KEY="kafka")[NBO_COLUMNS]


def rules_message(version: pd.DataFrame) -> tuple[bytes, bytes]:
    """(key, value) of one rules version."""
    rows = json.loads(version.to_json(orient="records", date_format="iso"))
    number = int(version["rules_version"].iloc[0])
    return str(number).encode(), json.dumps({"rules_version": number, "rows": rows}).encode()


def offer_message(offer_id: int, name_: str, url: str) -> tuple[bytes, bytes]:
    return str(offer_id).encode(), json.dumps({"OFFER_ID": offer_id, "OFFER_NAME": name_, "OFFER_URL": url}).encode()
