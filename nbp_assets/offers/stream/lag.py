"""How far behind the offer stream is: consumer lag per group and events waiting for a customer.

Lag is counted by reading from the committed offset to the end of each partition, not from
the broker's high watermark (tansu 0.6 reports a wrong one; on a real cluster the two agree).
"""

from __future__ import annotations

import json

from nbp_assets.offers.stream import topics as t
from nbp_assets.offers.stream.config import KafkaSettings
from nbp_assets.offers.stream.processor import _partitions, read_to_end


def consumer_lag(cfg: KafkaSettings, group: str, topic: str) -> dict[int, int]:
    """Messages of `topic` the group has not committed yet, per partition."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    probe = Consumer(cfg.consumer(group, **{"enable.partition.eof": True}))
    try:
        parts = _partitions(probe, topic)
        committed = probe.committed([TopicPartition(topic, p) for p in parts], timeout=30)
        start = [TopicPartition(topic, c.partition, c.offset if c.offset >= 0 else OFFSET_BEGINNING) for c in committed]
        probe.assign(start)
        lag = {p: 0 for p in parts}

        def count(msg) -> None:
            lag[msg.partition()] += 1

        read_to_end(probe, start, count)
        return lag
    finally:
        probe.close()  # never commits: enable.auto.commit is off


def waiting_events(cfg: KafkaSettings) -> dict[str, int]:
    """Events waiting for their customer's record, per customer, from the processor's changelog."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topic = t.name(t.PENDING, cfg.topic_prefix)
    reader = Consumer(cfg.consumer(None, **{"enable.partition.eof": True}))
    latest: dict[str, int] = {}

    def keep(msg) -> None:
        latest[msg.key().decode()] = len(json.loads(msg.value())) if msg.value() is not None else 0

    try:
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in _partitions(reader, topic)]
        reader.assign(parts)
        read_to_end(reader, parts, keep)
    finally:
        reader.close()
    return {k: v for k, v in latest.items() if v}


def table_state(cfg: KafkaSettings, topic: str) -> dict[bytes, object]:
    """The latest value per key of a table topic (None for a deleted key)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    name = t.name(topic, cfg.topic_prefix)
    reader = Consumer(cfg.consumer(None, **{"enable.partition.eof": True}))
    latest: dict[bytes, object] = {}
    try:
        parts = [TopicPartition(name, p, OFFSET_BEGINNING) for p in _partitions(reader, name)]
        reader.assign(parts)
        read_to_end(
            reader,
            parts,
            lambda m: latest.__setitem__(m.key(), json.loads(m.value()) if m.value() is not None else None),
        )
    finally:
        reader.close()
    return latest
