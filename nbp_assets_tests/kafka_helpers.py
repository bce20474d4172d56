"""Shared by the Kafka tests: a real tansu broker per test session, topics isolated per test by
a prefix, and small producers/readers for the recipe's topics."""

from __future__ import annotations

import json
import time

import pandas as pd

from nbp_assets.offers.stream import topics as t
from nbp_assets.offers.stream.config import KafkaSettings
from nbp_assets.offers.stream.processor import _partitions, read_to_end


def settings_for(bootstrap: str, prefix: str, **kw) -> KafkaSettings:
    # 2 partitions, not the recipe's 6: still several per topic (two workers split them, waiting
    # events are restored per partition), and tansu serves each partition of a fetch in turn
    return KafkaSettings(
        bootstrap, {}, prefix, partitions=kw.get("partitions", 2), replication=1, group=f"{prefix}processor"
    )


def producer(cfg: KafkaSettings):
    from confluent_kafka import Producer

    return Producer(cfg.producer())


def produce(cfg: KafkaSettings, topic: str, rows: list[tuple[bytes | None, dict | None]], timestamps=None) -> None:
    p = producer(cfg)
    for i, (key, value) in enumerate(rows):
        kwargs = {"timestamp": timestamps[i]} if timestamps is not None else {}
        p.produce(
            t.name(topic, cfg.topic_prefix), json.dumps(value).encode() if value is not None else None, key, **kwargs
        )
        if i % 10_000 == 9_999:
            p.poll(0)
    assert p.flush(30) == 0


def read_topic(cfg: KafkaSettings, topic: str) -> list[tuple[bytes | None, dict | None, int]]:
    """Every message of a topic, from offset 0 to its end: (key, value, partition)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    name = t.name(topic, cfg.topic_prefix)
    c = Consumer(cfg.consumer(None, **{"enable.partition.eof": True}))
    out = []
    try:
        parts = [TopicPartition(name, p, OFFSET_BEGINNING) for p in _partitions(c, name)]
        c.assign(parts)
        read_to_end(
            c,
            parts,
            lambda m: out.append((m.key(), json.loads(m.value()) if m.value() is not None else None, m.partition())),
        )
    finally:
        c.close()
    return out


def count_until(cfg: KafkaSettings, topic: str, at_least: int, timeout: float) -> int:
    """Messages of a topic from offset 0, read as they arrive, once there are `at_least`."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    name = t.name(topic, cfg.topic_prefix)
    c = Consumer(cfg.consumer(None))
    n, deadline = 0, time.monotonic() + timeout
    try:
        c.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in _partitions(c, name)])
        while n < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(f"{n} of {at_least} messages on {name} after {timeout:.0f} s")
            n += sum(1 for m in c.consume(10_000, 0.01) if m.error() is None)
    finally:
        c.close()
    return n


def wait_for(condition, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def lookup_rows(cfg: KafkaSettings) -> pd.DataFrame:
    return pd.DataFrame([v for _, v, _ in read_topic(cfg, t.LOOKUP)], columns=t.LOOKUP_FIELDS)
