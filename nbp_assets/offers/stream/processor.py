"""The offer stream processor: CUSTOMER_ACTIVITY_STREAM in, NEXT_BEST_OFFER and
NEXT_BEST_OFFER_LOOKUP out, per micro-batch of whatever has arrived (milliseconds).

    python -m nbp_assets kafka process        # long-running; SIGTERM/SIGINT stop it cleanly

At start it reads CUSTOMERS_TABLE, OFFERS_STREAM and NEXT_BEST_OFFER_RULES from their first
offset to their end (found by partition EOF) into local state, then joins the consumer
group on the activity topic. Each loop: apply new table records, take the events that
have arrived (up to `max_batch`), offer them (and any waiting events whose customer just
arrived), and produce both outputs and the waiting-events changelog. A batch's offsets are
committed only once the broker has acknowledged all of its output (acks=all) and that of
every batch before it; the next batch does not wait for that. A crash anywhere replays
from the last commit: at-least-once, each output keyed by ACTIVITY_ID with the same value
on replay, so readers drop duplicates by key.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from nbp_assets.offers.stream import topics as t
from nbp_assets.offers.stream.config import KafkaSettings
from nbp_assets.offers.stream.deadletter import DeadLetters, max_message_bytes
from nbp_assets.offers.stream.state import OfferState, Step

MAX_IN_FLIGHT = 8  # batches produced but not yet acknowledged


class _InFlight:
    """A batch's consumed offsets, committed once all its output is acknowledged."""

    __slots__ = ("offsets", "outstanding", "failures")

    def __init__(self, offsets: dict):
        self.offsets, self.outstanding, self.failures = offsets, 0, []

    def delivered(self, err, msg) -> None:
        self.outstanding -= 1
        if err is not None:
            self.failures.append(f"{msg.topic()}: {err}")


def _offsets(msgs) -> dict[tuple[str, int], int]:
    """Next offset to read per (topic, partition) after these messages. consume() hands each
    partition's messages over in offset order, so the last one seen per partition is the
    furthest (no max(): three calls per message are already a few % of a busy batch)."""
    return {(m.topic(), m.partition()): m.offset() + 1 for m in msgs}


@dataclass
class Counters:
    events: int = 0
    offered: int = 0
    released: int = 0
    rejected: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)
    seconds: dict = field(
        default_factory=lambda: {"wait": 0.0, "tables": 0.0, "decode": 0.0, "offer": 0.0, "produce": 0.0}
    )

    def timing(self) -> str:
        """Mean milliseconds per batch in each phase (where a batch's time goes)."""
        n = max(self.batches, 1)
        return ", ".join(f"{k} {v / n * 1000:.1f}" for k, v in self.seconds.items()) + " ms/batch"


def read_to_end(consumer, partitions, on_message=None, timeout: float = 30.0, on_batch=None) -> int:
    """Read assigned partitions until each reports EOF (tansu's high watermark is wrong, so
    the end is never taken from ListOffsets). `on_batch` gets lists of messages, `on_message`
    single ones. Fails after `timeout` seconds without progress. Returns messages read."""
    from confluent_kafka import KafkaError

    waiting = {(p.topic, p.partition) for p in partitions}
    n, deadline = 0, time.monotonic() + timeout
    while waiting:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no end of partition within {timeout:.0f} s for {sorted(waiting)[:5]}")
        good = []
        for msg in consumer.consume(10_000, 0.1):
            err = msg.error()
            if err is None:
                good.append(msg)
            elif err.code() == KafkaError._PARTITION_EOF:
                waiting.discard((msg.topic(), msg.partition()))
            else:
                raise RuntimeError(f"reading {msg.topic()}: {err}")
        if good:
            deadline = time.monotonic() + timeout
            n += len(good)
            if on_batch is not None:
                on_batch(good)
            else:
                for msg in good:
                    on_message(msg)
    return n


def _partitions(consumer, topic: str, timeout: float = 30.0) -> list[int]:
    meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
    if meta.error is not None:
        raise RuntimeError(f"topic {topic}: {meta.error}")
    return sorted(meta.partitions)


class TableReader:
    """CUSTOMERS_TABLE, OFFERS_STREAM and NEXT_BEST_OFFER_RULES, every partition from offset 0."""

    def __init__(self, cfg: KafkaSettings, state: OfferState, log, reject):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        # reject(message, reason): a bad record is skipped and dead-lettered, never fatal: the
        # tables are read from offset 0 at every start, so a fatal one would stop every start
        self.cfg, self.state, self.log, self.reject = cfg, state, log, reject
        self.names = {t.name(x, cfg.topic_prefix): x for x in t.TABLE_TOPICS}
        # Table records are rare and not waited on: polling 18 idle partitions every few ms
        # costs the broker more than every event fetch together (tansu reads its store per fetch).
        self.consumer = Consumer(cfg.consumer(None, **{"enable.partition.eof": True, "fetch.wait.max.ms": 100}))
        self.assigned = [
            TopicPartition(n, p, OFFSET_BEGINNING) for n in self.names for p in _partitions(self.consumer, n)
        ]
        self.consumer.assign(self.assigned)
        self.arrived: set[str] = set()  # customers with waiting events whose record arrived

    def catch_up(self) -> int:
        return read_to_end(self.consumer, self.assigned, on_batch=self._apply)

    def poll(self) -> set[str]:
        """Apply whatever table records have arrived since; the waiting customers now known."""
        msgs = [m for m in self.consumer.consume(10_000, 0) if m.error() is None]
        if msgs:
            self._apply(msgs)
        arrived, self.arrived = self.arrived, set()
        return arrived

    def _apply(self, msgs) -> None:
        customers = [m for m in msgs if self.names[m.topic()] == t.CUSTOMERS]
        if customers:  # in bulk: a cold start reads every version of every customer
            self._customers(customers)
        for m in msgs:
            if self.names[m.topic()] != t.CUSTOMERS:
                self._apply_one(m)

    def _apply_one(self, msg) -> None:
        kind = self.names[msg.topic()]
        try:
            if kind == t.OFFERS:
                self.state.set_offer(*t.offer_record(msg))
            else:  # the whole rules set is validated again: an invalid version keeps the previous rules
                self.state.set_rules_version(*t.rules_record(msg))
        except Exception as exc:
            self.reject(msg, t.reason(exc))

    def _customers(self, msgs) -> None:
        msgs = [m for m in msgs if m.value() is not None]  # a customer's versions are never deleted here
        versions, refused = t.sort_out(t.customer_versions, msgs)
        for m, why in refused:
            self.reject(m, why)
        self.arrived |= self.state.add_customer_versions(*versions)

    def close(self) -> None:
        self.consumer.close()


class Processor:
    """The Kafka shell around OfferState: one consumer-group member."""

    def __init__(self, cfg: KafkaSettings, max_batch: int = 20_000, log=print):
        from confluent_kafka import Consumer, Producer

        from nbp_assets.offers.stream.topics import ensure_topics

        self.cfg, self.max_batch, self.log = cfg, max_batch, log
        self.topic = {x: t.name(x, cfg.topic_prefix) for x in (t.ACTIVITY, t.NBO, t.LOOKUP, t.PENDING, t.REJECTED)}
        self.state = OfferState()
        self.counters = Counters()
        self.stopping = threading.Event()
        self.failed = False  # stopping on an error: nothing more is committed
        self.in_flight: deque[_InFlight] = deque()
        ensure_topics(cfg.admin(), cfg.topic_prefix, cfg.partitions, cfg.replication)
        # The producer forwards dead letters as they came: it must take any record the
        # broker took from another producer (librdkafka's own default is 1,000,000 bytes).
        limit, source = max_message_bytes(cfg, self.topic[t.REJECTED])
        self.log(f"largest record sent: {limit:,} bytes ({source})")
        # One delivery report per message, counted per batch: a batch is committed as soon
        # as its own output is acknowledged. (Failure-only reports with "commit when the
        # producer holds nothing" never found the producer empty at 10,000 events/s, and
        # the forced flush every few batches stalled the stream.)
        self.producer = Producer(
            cfg.producer(**{"queue.buffering.max.messages": 1_000_000, "message.max.bytes": limit})
        )
        self.dead = DeadLetters(self.producer, self.topic[t.REJECTED], limit, log)
        self.tables = TableReader(cfg, self.state, log, self._reject_table_record)
        self.consumer = Consumer(cfg.consumer(cfg.group))
        self._restore: set[int] = set()

    # ---------------------------------------------------------------- group membership

    def _on_assign(self, consumer, partitions) -> None:
        self._restore |= {p.partition for p in partitions}
        self.log(f"assigned partition(s) {sorted(p.partition for p in partitions)} of {self.topic[t.ACTIVITY]}")

    def _on_revoke(self, consumer, partitions) -> None:
        # Commit what is acknowledged before the partitions move, then forget their waiting
        # events (the next owner restores them from the changelog). Not after an error: the
        # error is what the log must end with, and the next owner replays from the last commit.
        if not self.failed:
            self._settle(wait=True)
        gone = {p.partition for p in partitions}
        self.state.drop_pending_partitions(gone)
        self._restore -= gone

    def _restore_pending(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        parts, self._restore = sorted(self._restore), set()
        reader = Consumer(self.cfg.consumer(None, **{"enable.partition.eof": True}))
        try:
            assigned = [TopicPartition(self.topic[t.PENDING], p, OFFSET_BEGINNING) for p in parts]
            reader.assign(assigned)
            read_to_end(
                reader,
                assigned,
                lambda m: self.state.restore_pending(
                    m.key().decode(), m.partition(), json.loads(m.value()) if m.value() is not None else None
                ),
            )
        finally:
            reader.close()

    # ---------------------------------------------------------------- the loop

    def start(self) -> None:
        n = self.tables.catch_up()
        refused = f", {self.counters.rejected} refused (dead-lettered)" if self.counters.rejected else ""
        self.log(
            f"tables loaded from {n:,} record(s){refused}: {len(self.state.customers):,} customers, "
            f"{len(self.state.offers)} offers, rules version {self.state.rules.current_version}"
        )
        self.consumer.subscribe([self.topic[t.ACTIVITY]], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def run(self, until=None) -> Counters:
        """Process until stop() (or until `until()` is true after a batch)."""
        try:
            self.start()
            while not self.stopping.is_set():
                self.once()
                if until is not None and until():
                    break
        except BaseException as exc:
            self._abandon(exc)
            raise
        self.close()
        return self.counters

    def _abandon(self, exc: BaseException) -> None:
        """Stop after an error without burying it: commit only what is already acknowledged,
        leave the group, and end the log with the error itself."""
        self.failed = True
        try:
            self.producer.flush(5)
            self._settle()
        except Exception as later:
            self.log(f"while stopping: {later}")
        try:
            self._close()
        except Exception as later:
            self.log(f"while stopping: {later}")
        self.log(
            f"stopped by {type(exc).__name__}: {exc} (offsets committed up to the last acknowledged batch; "
            "a restart replays the rest)"
        )

    def once(self, timeout: float = 0.01) -> int:
        """One micro-batch: returns the events consumed."""
        # consume(n, t) waits the whole of t unless n messages come first: take what is queued
        # now, and block (for one message) only when nothing is, so a quiet stream adds no wait.
        clock, c = time.perf_counter, self.counters
        t0 = clock()
        msgs = self.consumer.consume(self.max_batch, 0)
        if not msgs:
            msgs = self.consumer.consume(1, timeout)
            if msgs:
                msgs += self.consumer.consume(self.max_batch - 1, 0)
        self._settle()
        t1 = clock()
        arrived = set()
        if self._restore:
            self._restore_pending()
            # a record that arrived while no one owned the partition was loaded at start
            arrived = {p for p in self.state.pending if p in self.state.customers}
        arrived |= self.tables.poll()
        msgs = [m for m in msgs if m.error() is None]
        if not msgs and not arrived:
            return 0
        t2 = clock()
        events, rejected = self._decode(msgs)
        released = self.state.take_pending(arrived)
        batch = {k: np.concatenate([v, released[k]]) for k, v in events.items()} if released is not None else events
        t3 = clock()
        step = self.state.step(batch)
        t4 = clock()
        self._produce(step, released, rejected, _offsets(msgs))
        for k, v in zip(c.seconds, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, clock() - t4)):
            c.seconds[k] += v
        c.events += len(events["activity_id"])
        c.offered += len(step.nbo["ACTIVITY_ID"])
        c.released += 0 if released is None else len(released["activity_id"])
        c.rejected += len(rejected)
        c.batches += 1
        return len(msgs)

    def _decode(self, msgs) -> tuple[dict, list]:
        events, rejected = t.decode_activity(msgs)
        if rejected:
            m, why = rejected[0]
            self.log(
                f"{len(rejected)} activity message(s) refused, dead-lettered to {self.topic[t.REJECTED]} "
                f"(first: partition {m.partition()} offset {m.offset()}: {why})"
            )
        return events, rejected

    def _reject_table_record(self, msg, why: str) -> None:
        """A bad table record is skipped (the tables keep what they had) and dead-lettered."""
        self.counters.rejected += 1
        self.log(f"{msg.topic()} partition {msg.partition()} offset {msg.offset()} skipped, dead-lettered: {why}")
        self.dead.send(msg, why, self._table_dead_letter_delivered)

    def _table_dead_letter_delivered(self, err, msg) -> None:
        if err is not None:  # not fatal: the record is read again (and refused again) at the next start
            self.log(f"dead letter of a table record not acknowledged: {err}")

    def _produce(self, step: Step, released: dict | None, rejected: list, offsets: dict) -> None:
        batch = _InFlight(offsets)
        self.in_flight.append(batch)
        delivered, produce_one = batch.delivered, self.producer.produce

        def produce(topic, value, key, **kw):
            try:
                produce_one(topic, value, key, on_delivery=delivered, **kw)
            except BufferError:  # local queue full: let librdkafka send, then retry
                self.producer.poll(0.05)
                produce_one(topic, value, key, on_delivery=delivered, **kw)
            batch.outstanding += 1  # only once queued: a refused message is never waited for

        for topic, values, ids in (
            (self.topic[t.NBO], t.nbo_messages(step.nbo), step.nbo["ACTIVITY_ID"]),
            (self.topic[t.LOOKUP], t.lookup_messages(step.lookup), step.lookup["ACTIVITY_ID"]),
        ):
            # The two outputs are most of a batch's messages: no wrapper call per message
            # (text keys go out as UTF-8; a message refused for a full queue is sent again).
            keys = ids.astype(str).tolist()
            batch.outstanding += len(values)
            i = 0
            while i < len(values):
                try:
                    for i in range(i, len(values)):
                        # positional (partition -1 = the partitioner's): keyword arguments cost
                        # 2.1-2.2 µs a call against 1.4-1.5 (measured on 40,000 calls)
                        produce_one(topic, values[i], keys[i], -1, delivered)
                    i = len(values)
                except BufferError:
                    self.producer.poll(0.05)
        # Waiting events are durable before their offsets are committed: the changelog holds
        # each waiting customer's list (null once offered), in the activity's partition.
        gone = dict(zip(released["party_id"].tolist(), released["partition"].tolist())) if released is not None else {}
        for party in step.pending_changed | set(gone):
            if party in self.state.pending:
                partition, queued = self.state.pending[party]
                value = json.dumps(queued).encode()
            else:
                partition, value = int(gone[party]), None
            produce(self.topic[t.PENDING], value, party.encode(), partition=partition)
        for m, why in rejected:
            batch.outstanding += self.dead.send(m, why, delivered)
        if step.unmatched_offers:
            self.log(
                f"{step.unmatched_offers} offer(s) name an OFFER_ID missing from OFFERS_STREAM: "
                "in NEXT_BEST_OFFER, not in the lookup"
            )
        self.producer.poll(0)  # hands the batch to librdkafka's sender without waiting for it
        if len(self.in_flight) > MAX_IN_FLIGHT:  # bounds what a crash replays
            self._settle(wait=True)

    def _settle(self, wait: bool = False) -> None:
        """Commit the offsets of the oldest batches whose every output is acknowledged, in
        order: a batch is committed only after it and every batch before it are durable."""
        from confluent_kafka import TopicPartition

        if wait:
            self.producer.flush(60)
        else:
            self.producer.poll(0)
        offsets: dict[tuple[str, int], int] = {}
        while self.in_flight and self.in_flight[0].outstanding == 0:
            done = self.in_flight.popleft()
            if done.failures:
                raise RuntimeError(
                    f"output not acknowledged ({done.failures[:3]}): offsets not committed, the batch will be replayed"
                )
            offsets.update(done.offsets)
        if wait and self.in_flight:
            raise RuntimeError(
                f"{len(self.in_flight)} batch(es) not acknowledged within 60 s "
                f"({len(self.producer)} message(s) still unsent): offsets not committed"
            )
        if offsets:  # a batch of released waiting events only has none
            self.consumer.commit(
                offsets=[TopicPartition(tp, p, o) for (tp, p), o in offsets.items()], asynchronous=not wait
            )

    def stop(self, *_) -> None:
        self.stopping.set()

    def close(self) -> None:
        try:
            self._settle(wait=True)
        finally:
            self._close()

    def _close(self) -> None:
        try:
            self.consumer.close()  # leaves the group at once: the partitions move without waiting for a timeout
        finally:
            self.tables.close()
            self.producer.flush(10)


def serve(
    cfg: KafkaSettings, max_batch: int = 20_000, report_every: float = 10.0, label: str = "", parent: int | None = None
) -> None:
    """The CLI's long-running process: run until SIGTERM/SIGINT, printing a status line. A
    worker of `serve_workers` (`parent` = its pid) also stops when that parent is gone: a
    supervisor restarting a SIGKILLed parent must not find the old workers still in the group."""
    processor = Processor(cfg, max_batch=max_batch, log=lambda s: print(f"{label}{s}", flush=True))
    signal.signal(signal.SIGTERM, processor.stop)
    signal.signal(signal.SIGINT, processor.stop)
    last = [time.monotonic()]

    def status() -> bool:
        if time.monotonic() - last[0] >= report_every:
            c = processor.counters
            print(
                f"{label}{c.events:,} events, {c.offered:,} offered, {c.released:,} released after their customer "
                f"arrived, {processor.state.pending_count:,} waiting, {c.rejected:,} rejected; {c.batches:,} "
                f"batches; {c.timing()}",
                flush=True,
            )
            last[0] = time.monotonic()
        if parent is not None and os.getppid() != parent:
            print(f"{label}parent {parent} gone: stopping", flush=True)
            return True
        return False

    print(f"{label}offer stream processor: {cfg.describe()}, group {cfg.group}", flush=True)
    processor.run(until=status)
    print(f"{label}stopped; offsets committed up to the last acknowledged batch", flush=True)


def serve_workers(cfg: KafkaSettings, workers: int, max_batch: int = 20_000, report_every: float = 10.0) -> int:
    """`kafka process --workers N`: N processors, each its own process and consumer-group
    member, so the offer step runs on N cores (one Python process is one core). The group
    gives each a share of the activity partitions; a worker owning none idles. Runs until
    SIGTERM/SIGINT (passed on to every worker, each commits what is acknowledged and leaves
    the group) or until a worker dies: then the others are stopped too and the exit code is
    1, so whatever supervises this command restarts the set (the group replays the dead
    worker's uncommitted batches, as after any crash). Returns the exit code."""
    import multiprocessing as mp

    from nbp_assets.offers.stream.topics import ensure_topics

    # created once here, not raced by N workers
    ensure_topics(cfg.admin(), cfg.topic_prefix, cfg.partitions, cfg.replication)
    from confluent_kafka.admin import AdminClient

    activity = t.name(t.ACTIVITY, cfg.topic_prefix)
    partitions = len(_partitions(AdminClient(cfg.admin()), activity))
    if workers > partitions:
        print(f"{activity} has {partitions} partition(s): {workers - partitions} worker(s) will idle", flush=True)
    spawn = mp.get_context("spawn")
    children = [
        spawn.Process(target=serve, args=(cfg, max_batch, report_every, f"[worker {i + 1}/{workers}] ", os.getpid()))
        for i in range(workers)
    ]
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    for child in children:
        child.start()
    print(f"offer stream: {workers} worker process(es), pids {[c.pid for c in children]}", flush=True)
    code = 0
    while not stopping:
        dead = [c for c in children if c.exitcode is not None]
        if dead:
            print(f"worker pid {dead[0].pid} exited with {dead[0].exitcode}: stopping the others", flush=True)
            code = 1
            break
        time.sleep(0.2)
    for child in children:
        if child.exitcode is None:
            os.kill(child.pid, signal.SIGTERM)
    for child in children:
        child.join(60)
        if child.exitcode is None:
            child.kill()
            child.join(10)
    return code
