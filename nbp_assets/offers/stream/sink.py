"""NEXT_BEST_OFFER -> the warehouse's nbp_offers.next_best_offer_stream and
NEXT_BEST_OFFER_LOOKUP -> product_intelligence.next_best_offer_lookup (the lookup table the
warehouse path writes too), in micro-batches, for audit and reporting.

The offers get a table of their own, with next_best_offer's columns (BATCH_KEY 'kafka'): in
the warehouse path's table they would look like a batch whose lookup step died, and its
lookup step would rebuild them.

The processor is at-least-once: after a crash it may produce an offer again, with the same
key (ACTIVITY_ID) and value. The sink drops such duplicates: inside a micro-batch by key,
and against each table by inserting only ACTIVITY_IDs it does not hold yet (one range query
per table and batch, no row-by-row SQL). Offsets are committed after the warehouse commits,
so a sink killed midway re-reads its batch and inserts nothing twice.
"""

from __future__ import annotations

import time

import pandas as pd

from nbp_assets.contract.tables import NEXT_BEST_OFFER_STREAM
from nbp_assets.core import sql
from nbp_assets.offers.stream import topics as t
from nbp_assets.offers.stream.config import KafkaSettings
from nbp_assets.offers.stream_state import LOOKUP_DDL, LOOKUP_TABLE

STREAM_NBO_TABLE = NEXT_BEST_OFFER_STREAM.name
STREAM_NBO_DDL = NEXT_BEST_OFFER_STREAM.ddl_template()

# topic -> (name in counts, warehouse table, its DDL, message decoder)
SUNK = {
    t.NBO: ("offers", STREAM_NBO_TABLE, STREAM_NBO_DDL, t.nbo_frame),
    t.LOOKUP: ("lookup", LOOKUP_TABLE, LOOKUP_DDL, t.lookup_frame),
}


def sink_group(cfg: KafkaSettings) -> str:
    """The sink's consumer group: the processor's group name + "-warehouse-sink"."""
    return f"{cfg.group}-warehouse-sink"


def write_new(warehouse, rows: pd.DataFrame, table: str = LOOKUP_TABLE, ddl: str = LOOKUP_DDL) -> int:
    """Insert the rows whose ACTIVITY_ID the table does not hold yet; returns how many."""
    rows = rows.drop_duplicates("ACTIVITY_ID", keep="first")
    if rows.empty:
        return 0
    if warehouse.table_exists(table):
        lo, hi = int(rows["ACTIVITY_ID"].min()), int(rows["ACTIVITY_ID"].max())
        held = warehouse.query(sql.render("offers", "held_ids", table=table, lo=lo, hi=hi).text)
        rows = rows[~rows["ACTIVITY_ID"].isin(held["ACTIVITY_ID"].astype("int64"))]
    if rows.empty:
        return 0
    return warehouse.replace_slice(table, rows.reset_index(drop=True), where="FALSE", ddl=ddl)


class Sink:
    """One member of the sink's consumer group."""

    def __init__(self, cfg: KafkaSettings, warehouse, group: str | None = None, member: bool = True):
        """member=True joins the group (several sink processes share the partitions);
        member=False takes every partition from the group's committed offsets without
        joining (no rebalance wait: for the Dagster sensor's short drains; never both at once)."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from nbp_assets.offers.stream.processor import _partitions

        self.cfg, self.warehouse = cfg, warehouse
        self.consumer = Consumer(cfg.consumer(group or sink_group(cfg)))
        self.assigned = False
        self.kinds = {t.name(x, cfg.topic_prefix): x for x in SUNK}
        if member:
            self.consumer.subscribe(list(self.kinds), on_assign=self._on_assign)
        else:
            committed = self.consumer.committed(
                [TopicPartition(n, p) for n in self.kinds for p in _partitions(self.consumer, n)], timeout=30
            )
            self.consumer.assign(
                [
                    TopicPartition(c.topic, c.partition, c.offset if c.offset >= 0 else OFFSET_BEGINNING)
                    for c in committed
                ]
            )
            self.assigned = True
        self.received = 0
        self.inserted = {SUNK[x][0]: 0 for x in SUNK}

    def _on_assign(self, consumer, partitions) -> None:
        self.assigned = True

    def batch(self, max_messages: int = 200_000, wait: float = 1.0) -> tuple[int, dict[str, int]]:
        """One micro-batch: (messages read, new rows per table)."""
        from confluent_kafka import TopicPartition

        msgs = [m for m in self.consumer.consume(max_messages, wait) if m.error() is None]
        inserted = {SUNK[x][0]: 0 for x in SUNK}
        if not msgs:
            return 0, inserted
        for name, kind in self.kinds.items():
            label, table, ddl, decode = SUNK[kind]
            values = [m.value() for m in msgs if m.topic() == name and m.value() is not None]
            if values:  # the offers first: an audited lookup row always has its offer row
                inserted[label] = write_new(self.warehouse, decode(values), table, ddl)
        last: dict[tuple[str, int], int] = {}
        for m in msgs:
            last[(m.topic(), m.partition())] = max(last.get((m.topic(), m.partition()), -1), m.offset())
        self.consumer.commit(offsets=[TopicPartition(tp, p, o + 1) for (tp, p), o in last.items()], asynchronous=False)
        self.received += len(msgs)
        for k, v in inserted.items():
            self.inserted[k] += v
        return len(msgs), inserted

    def drain(self, idle_seconds: float = 2.0, max_seconds: float = 60.0) -> tuple[int, dict[str, int]]:
        """Batches until nothing arrived for `idle_seconds` (or `max_seconds` passed):
        (messages read, new rows per table)."""
        started = idle_since = time.monotonic()
        got, ins = 0, {SUNK[x][0]: 0 for x in SUNK}
        while time.monotonic() - started < max_seconds:
            n, i = self.batch(wait=0.5)
            got += n
            ins = {k: ins[k] + i[k] for k in ins}
            if n or not self.assigned:  # joining the group takes seconds: not idle yet
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= idle_seconds:
                break
        return got, ins

    def close(self) -> None:
        self.consumer.close()


def serve(cfg: KafkaSettings, warehouse, interval: float = 5.0) -> None:
    """The CLI's long-running sink: a micro-batch every `interval` seconds until interrupted."""
    sink = Sink(cfg, warehouse)
    print(
        f"warehouse sink: {', '.join(f'{n} -> {SUNK[k][1]}' for n, k in sink.kinds.items())} in {warehouse.describe()}",
        flush=True,
    )
    try:
        while True:
            n, i = sink.batch(wait=interval)
            if n:
                new = sum(i.values())
                print(
                    f"{n:,} message(s): {i['offers']:,} new offer row(s), {i['lookup']:,} new lookup row(s), "
                    f"{n - new:,} duplicate(s) dropped",
                    flush=True,
                )
    except KeyboardInterrupt:
        pass
    finally:
        sink.close()
