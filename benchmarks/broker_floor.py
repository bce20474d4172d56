"""The broker's own latency floor, measured the way the offer stream is (stream/bench.py).

A feeder produces small messages at a fixed rate to topic A; a relay process copies each
batch it consumes to topic B doing nothing else (the processor with no work); one reader
process consumes A, another B (one reader of both fetched twice the partitions per request,
which tansu serves one by one, and measured slower). A -> reader is one hop (produce, store,
fetch); A -> relay -> B -> reader is the processor's path, two hops. Same client settings as the processor (acks=all,
idempotence, linger, compression, the consumers' fetch wait), own processes, so no Python work
stands between the clients: whatever the offer stream adds is above these figures.
"""

from __future__ import annotations

import multiprocessing as mp
import struct
import time

import numpy as np

from nbp_assets.offers.stream.config import KafkaSettings

PAD = b"x" * 120  # about the recipe's message size


def _assign_end(consumer, topics):
    from confluent_kafka import OFFSET_END, TopicPartition

    from nbp_assets.offers.stream.processor import _partitions

    consumer.assign([TopicPartition(x, p, OFFSET_END) for x in topics for p in _partitions(consumer, x)])
    consumer.consume(1, 0.5)


def _relay(cfg: KafkaSettings, src: str, dst: str, ready, stop) -> None:
    from confluent_kafka import Consumer, Producer

    consumer, producer = Consumer(cfg.consumer(None)), Producer(cfg.producer())
    _assign_end(consumer, [src])
    ready.set()
    while not stop.is_set():
        msgs = consumer.consume(1, 0.01)
        if msgs:
            for m in msgs + consumer.consume(100_000, 0):
                if m.error() is None:
                    producer.produce(dst, m.value(), m.key())
            producer.poll(0)
    producer.flush(10)
    consumer.close()


def _reader(cfg: KafkaSettings, topic: str, n: int, out, ready) -> None:
    from confluent_kafka import Consumer

    consumer = Consumer(cfg.consumer(None))
    _assign_end(consumer, [topic])
    ready.set()
    got = {topic: []}
    deadline = time.time() + 120
    while len(got[topic]) < n and time.time() < deadline:
        first = consumer.poll(0.05)
        if first is None:
            continue
        now = time.time()
        for m in [first, *consumer.consume(100_000, 0)]:
            if m.error() is None:
                sent = struct.unpack("d", m.value()[:8])[0]
                got[m.topic()].append((sent, now - sent))
    consumer.close()
    out.put({x: np.array(v).reshape(-1, 2) for x, v in got.items()})


def floor(cfg: KafkaSettings, rate: int, seconds: float) -> dict[str, tuple[float, float]]:
    """{"one hop" | "two hops": (p50 ms, p99 ms)} after a 1 s warm-up, on fresh topics."""
    from confluent_kafka import Producer

    from nbp_assets.offers.stream.topics import create_plain_topics

    a, b = f"{cfg.topic_prefix}FLOOR_A_{rate}", f"{cfg.topic_prefix}FLOOR_B_{rate}"
    create_plain_topics(cfg.admin(), [a, b], cfg.partitions)
    n = int(rate * seconds)
    spawn = mp.get_context("spawn")
    out, stop = spawn.Queue(), spawn.Event()
    ready = [spawn.Event() for _ in range(3)]
    processes = [
        spawn.Process(target=_relay, args=(cfg, a, b, ready[0], stop), daemon=True),
        spawn.Process(target=_reader, args=(cfg, a, n, out, ready[1]), daemon=True),
        spawn.Process(target=_reader, args=(cfg, b, n, out, ready[2]), daemon=True),
    ]
    for p in processes:
        p.start()
    try:
        for r in ready:
            r.wait(60)
        producer = Producer(cfg.producer())
        start, i = time.time(), 0
        while i < n:
            due = min(n, int((time.time() - start) * rate) + 1)
            while i < due:
                producer.produce(a, struct.pack("d", time.time()) + PAD, str(i % 10_000).encode())
                i += 1
            producer.poll(0)
            time.sleep(0.0005)
        producer.flush(30)
        got = {**out.get(timeout=150), **out.get(timeout=150)}
    finally:
        stop.set()
        for p in processes:
            p.join(15)
            if p.is_alive():
                p.kill()
    result = {}
    for label, x in (("one hop", a), ("two hops", b)):
        sent, took = got[x][:, 0], got[x][:, 1] * 1000
        took = took[sent >= start + 1.0]  # the first second warms the clients up, as in bench.py
        result[label] = (float(np.percentile(took, 50)), float(np.percentile(took, 99)))
    return result
