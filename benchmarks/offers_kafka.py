"""`python -m benchmarks.offers --kafka`: the processor on a real broker on this machine.

Latency: a feeder produces recipe JSON events at a fixed rate (1,000 and 10,000 events/s)
while the processor runs (its own process, `python -m nbp_assets kafka process`); a reader
consumes NEXT_BEST_OFFER_LOOKUP. Latency = lookup consumed - event produced, per event,
both on this process's clock; the first second of each rate is warm-up and not counted.
Throughput: a backlog of events is produced with the processor stopped, then the processor
is started and drains it; events/s = events / (time of the last lookup record - time of the
first), from the records' broker timestamps (set when the processor produced them).
Everything (broker, processor, feeder, reader) shares this machine's cores.
Before each rate, the broker's own floor at that rate (stream/floor.py): what two hops
through a relay that does no work cost, the least the processor's path can cost.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nbp_assets.offers.stream import topics as t
from nbp_assets.offers.stream.config import KafkaSettings
from nbp_assets.offers.stream.topics import ensure_topics, json_lines


def _messages(events: pd.DataFrame) -> tuple[list[bytes], list[bytes]]:
    values = json_lines(
        pd.DataFrame(
            {
                "ACTIVITY_ID": events["activity_id"].astype("int64"),
                "IP_ADDRESS": events["ip_address"],
                "CUSTOMER_ID": events["party_id"],
                "ACTIVITY_TYPE": events["activity_type"],
                "PROPENSITY_TO_BUY": events["propensity_to_buy"],
            }
        )
    )
    return [p.encode() for p in events["party_id"].tolist()], values


def _producer(cfg: KafkaSettings, **extra):
    from confluent_kafka import Producer

    return Producer(cfg.producer(**{"queue.buffering.max.messages": 2_000_000, **extra}))


def produce_customers(cfg: KafkaSettings, versions: pd.DataFrame) -> None:
    frame = pd.DataFrame(
        {
            "CUSTOMER_ID": versions["party_id"],
            "INCOME": versions["income"],
            "FICO": versions["fico"],
            "VALID_FROM": versions["valid_from"].dt.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    p = _producer(cfg, **{"linger.ms": 20})
    topic = t.name(t.CUSTOMERS, cfg.topic_prefix)
    for k, v in zip(versions["party_id"].tolist(), json_lines(frame)):
        p.produce(topic, v, k.encode())
    assert p.flush(60) == 0


class Reader(threading.Thread):
    """Consumes the lookup topic; records when each ACTIVITY_ID arrived."""

    def __init__(self, cfg: KafkaSettings):
        super().__init__(daemon=True)
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from nbp_assets.offers.stream.processor import _partitions

        self.consumer = Consumer(cfg.consumer(None))  # fetches as often as the processor's consumer
        topic = t.name(t.LOOKUP, cfg.topic_prefix)
        # From offset 0 of the rate's own (fresh) topic: started at the end (ListOffsets, wrong
        # on tansu 0.6.0), the reader missed 14-76 of 50,100 lookup records that the topic held.
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in _partitions(self.consumer, topic)])
        self.arrived: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            # poll() returns as soon as one message is there (consume(n, t) would wait for n or t)
            first = self.consumer.poll(0.05)
            if first is None:
                continue
            now = time.time()
            for m in [first, *self.consumer.consume(10_000, 0)]:
                if m.error() is None:
                    self.arrived.setdefault(int(m.key()), now)
        self.consumer.close()


def _processor(cfg: KafkaSettings, log: Path, workers: int = 1) -> subprocess.Popen:
    env = {
        **os.environ,
        "NBP_KAFKA_BOOTSTRAP_SERVERS": cfg.bootstrap_servers,
        "NBP_KAFKA_TOPIC_PREFIX": cfg.topic_prefix,
        "NBP_KAFKA_GROUP": cfg.group,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "nbp_assets", "kafka", "process", "--report-every", "1", "--workers", str(workers)],
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


WARM_UP_EVENTS = 100


def latency(cfg: KafkaSettings, keys, values, ids, rate: int, seconds: float) -> dict:
    """Feed `rate` events/s for `seconds`; percentiles of produced -> lookup consumed.
    The first WARM_UP_EVENTS are sent first and waited for: until one has come through, the
    processor's first fetch and the reader's position are still settling (seconds on a busy
    machine), which is start-up, not the stream."""
    reader = Reader(cfg)
    reader.start()
    time.sleep(0.5)  # the reader's assignment settles at the end of the topic
    p = _producer(cfg)  # the settings' linger, as an application producing events would
    topic = t.name(t.ACTIVITY, cfg.topic_prefix)
    for k, v in zip(keys[:WARM_UP_EVENTS], values[:WARM_UP_EVENTS]):
        p.produce(topic, v, k)
    p.flush(30)
    warm_ids = set(int(x) for x in ids[:WARM_UP_EVENTS])
    deadline = time.time() + 60
    while time.time() < deadline and len(reader.arrived.keys() & warm_ids) < len(warm_ids):
        time.sleep(0.05)
    keys, values, ids = keys[WARM_UP_EVENTS:], values[WARM_UP_EVENTS:], ids[WARM_UP_EVENTS:]
    n = int(rate * seconds)
    sent = np.zeros(n)
    start = time.time()
    i = 0
    while i < n:
        due = min(n, int((time.time() - start) * rate) + 1)
        now = time.time()
        while i < due:
            p.produce(topic, values[i], keys[i])
            sent[i] = now
            i += 1
        p.poll(0)
        time.sleep(0.0005)
    fed_rate = n / (time.time() - start)
    p.flush(30)
    deadline = time.time() + 30
    wanted = set(int(x) for x in ids[:n])
    while time.time() < deadline and len(reader.arrived.keys() & wanted) < len(wanted):
        time.sleep(0.2)
    reader.stop.set()
    reader.join(5)
    warm = sent >= start + 1.0
    got = np.array([reader.arrived.get(int(a), np.nan) for a in ids[:n]])
    lat = (got - sent)[warm] * 1000
    missing = int(np.isnan(lat).sum())
    lat = lat[~np.isnan(lat)]
    unseen = [int(a) for a in ids[:n] if int(a) not in reader.arrived]
    return {
        "rate": rate,
        "events": n,
        "measured": len(lat),
        "missing": missing,
        "unseen": len(unseen),
        "unseen_on_topic": _on_topic(cfg, unseen) if unseen else 0,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "max": float(lat.max()),
        "achieved_rate": fed_rate,
    }


def _on_topic(cfg: KafkaSettings, activity_ids: list[int]) -> int:
    """How many of these events' lookup records the topic holds, read from offset 0 to its end.
    tansu 0.6.0 can skip records in a live fetch when two producers (two workers) append to
    one partition: the reader saw offsets jump (e.g. 24,168 -> 24,207) that this read returns."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from nbp_assets.offers.stream.processor import _partitions, read_to_end

    topic = t.name(t.LOOKUP, cfg.topic_prefix)
    c = Consumer(cfg.consumer(None, **{"enable.partition.eof": True}))
    wanted, found = set(activity_ids), set()
    try:
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in _partitions(c, topic)]
        c.assign(parts)
        read_to_end(c, parts, on_batch=lambda ms: found.update(int(m.key()) for m in ms if int(m.key()) in wanted))
    finally:
        c.close()
    return len(found)


def drain_throughput(cfg: KafkaSettings, keys, values, log: Path, workers: int = 1) -> dict:
    """Produce a backlog with no processor running, then time the processor draining it."""
    topic = t.name(t.ACTIVITY, cfg.topic_prefix)
    p = _producer(cfg, **{"linger.ms": 20})
    for k, v in zip(keys, values):
        try:
            p.produce(topic, v, k)
        except BufferError:
            p.poll(0.1)
            p.produce(topic, v, k)
    assert p.flush(120) == 0
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from nbp_assets.offers.stream.processor import _partitions

    reader = Consumer(cfg.consumer(None))
    out = t.name(t.LOOKUP, cfg.topic_prefix)
    reader.assign([TopicPartition(out, q, OFFSET_BEGINNING) for q in _partitions(reader, out)])  # fresh topics
    reader.consume(1, 0.5)
    processor = _processor(cfg, log, workers)
    stamps, deadline = [], time.time() + 300
    try:
        while len(stamps) < len(keys) and time.time() < deadline:
            for m in reader.consume(50_000, 0.2):
                if m.error() is None:
                    stamps.append(m.timestamp()[1])
    finally:
        _stop(processor)
        reader.close()
    stamps = np.sort(np.array(stamps))
    span = (stamps[-1] - stamps[0]) / 1000 if len(stamps) > 1 else float("nan")
    return {
        "events": len(keys),
        "lookup_records": len(stamps),
        "seconds": span,
        "events_per_s": len(stamps) / span if span else float("nan"),
    }


def run(
    events: pd.DataFrame,
    versions: pd.DataFrame,
    backlog: int,
    seconds: float,
    bootstrap_servers: str | None = None,
    partitions: int = 6,
    workers: int = 1,
) -> None:
    from nbp_assets.offers.stream.broker import start_broker

    work = Path(tempfile.mkdtemp(prefix="nbo-kafka-bench-"))
    broker = None if bootstrap_servers else start_broker(log=work / "tansu.log")
    servers = bootstrap_servers or broker.bootstrap_servers
    try:
        known = events[events["party_id"] != "UNKNOWN"].reset_index(drop=True)  # waiting events have no latency
        keys, values = _messages(known)
        ids = known["activity_id"].astype("int64").to_numpy()
        print(
            f"Kafka path: broker {'tansu (memory) pid ' + str(broker.pid) if broker else servers} on this machine, "
            f"{os.cpu_count()} cores; {partitions} partition(s) per topic; processor = "
            f"`python -m nbp_assets kafka process --workers {workers}` (own process(es)); "
            f"{len(versions):,} customer versions; {np.mean([len(v) for v in values[:10000]]):.0f} bytes/event"
        )
        offset = 0
        for rate in (1_000, 10_000):
            from benchmarks.broker_floor import floor

            f = floor(KafkaSettings(servers, {}, f"floor{os.getpid()}_", partitions, 1, "unused"), rate, seconds)
            print(
                f"  {rate:>6,} events/s, the broker alone (no processor, stream/floor.py): one hop p50 "
                f"{f['one hop'][0]:.1f} ms, p99 {f['one hop'][1]:.1f} ms; two hops through a relay doing nothing "
                f"p50 {f['two hops'][0]:.1f} ms, p99 {f['two hops'][1]:.1f} ms",
                flush=True,
            )
            # Each rate on topics and a processor of its own: tansu's memory store reads slower
            # as a partition grows, so a second rate measured after the first would pay for it.
            lat_cfg = KafkaSettings(servers, {}, f"lat{rate}_{os.getpid()}_", partitions, 1, f"lat{rate}_{os.getpid()}")
            ensure_topics(lat_cfg.admin(), lat_cfg.topic_prefix, partitions)
            produce_customers(lat_cfg, versions)
            log = work / f"processor-latency-{rate}.log"
            processor = _processor(lat_cfg, log, workers)
            try:
                _wait_ready(log, partitions, workers)
                n = int(rate * seconds) + WARM_UP_EVENTS
                r = latency(
                    lat_cfg,
                    keys[offset : offset + n],
                    values[offset : offset + n],
                    ids[offset : offset + n],
                    rate,
                    seconds,
                )
                offset += n
                print(f"    processor: {_last_status(log)}")
                print(
                    f"  {rate:>6,} events/s for {seconds:.0f} s: event produced -> lookup consumed p50 "
                    f"{r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, max {r['max']:.1f} ms "
                    f"({r['measured']:,} measured after 1 s warm-up, {r['missing']} missing"
                    + (
                        f" ({r['unseen']} not seen by the live reader, {r['unseen_on_topic']} of them on the topic "
                        "read from offset 0)"
                        if r["unseen"]
                        else ""
                    )
                    + "; "
                    f"fed at {r['achieved_rate']:,.0f}/s)",
                    flush=True,
                )
            finally:
                _stop(processor)
        thr_cfg = KafkaSettings(servers, {}, f"thr{os.getpid()}_", partitions, 1, f"thr{os.getpid()}")
        ensure_topics(thr_cfg.admin(), thr_cfg.topic_prefix, partitions)
        produce_customers(thr_cfg, versions)
        n = min(backlog, len(keys))
        r = drain_throughput(thr_cfg, keys[:n], values[:n], work / "processor-throughput.log", workers)
        size = float(np.mean([len(v) for v in values[:10000]]))
        print(
            f"  sustained: a backlog of {r['events']:,} events drained at {r['events_per_s']:,.0f} events/s "
            f"({r['events_per_s'] * size / 1e6:.1f} MB/s of recipe JSON) over {r['seconds']:.1f} s; "
            f"{r['lookup_records']:,} lookup records",
            flush=True,
        )
        print(f"    processor: {_last_status(work / 'processor-throughput.log')}")
        print(f"  logs: {work}")
    finally:
        if broker:
            broker.stop()


def _wait_ready(log: Path, partitions: int, workers: int = 1, timeout: float = 60) -> None:
    """Until the processor's workers own every partition of the activity topic: a fixed sleep
    for the group join measured the join (several seconds when the machine is busy), not the
    stream. Each worker's latest assignment counts (a join moves partitions between them)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = log.read_text() if log.exists() else ""
        latest = dict(re.findall(r"^(\[worker [^]]*\] )?assigned partition\(s\) \[([\d, ]*)\]", text, re.M))
        owned = {int(p) for found in latest.values() for p in found.split(",") if p.strip()}
        if len(latest) >= min(workers, partitions) and len(owned) >= partitions:
            time.sleep(0.5)  # the first fetch positions the consumer
            return
        time.sleep(0.1)
    raise RuntimeError(f"the processor did not join the group: {log.read_text()[-2000:] if log.exists() else ''}")


def _last_status(log: Path) -> str:
    """The processor's last status line (cumulative counts and ms per batch by phase)."""
    lines = [x for x in log.read_text().splitlines() if " events, " in x] if log.exists() else []
    return lines[-1] if lines else "(no status line)"
