"""Poison messages on the real broker (tansu): a message that is not the recipe's never stops
the stream. Each is dead-lettered to CUSTOMER_ACTIVITY_REJECTED with its reason in a header,
its offset is committed, and a restarted processor goes on without reading it again; a bad
table record is skipped and dead-lettered at start-up; a message too large even for the
dead-letter topic is recorded and skipped; a failure's last log line names its cause.
"""

from __future__ import annotations

import time

import orjson
import pytest

from nbp_assets.offers.stream import topics as t
from nbp_assets.offers.stream.broker import start_broker
from nbp_assets.offers.stream.lag import consumer_lag
from nbp_assets.offers.stream.processor import Processor, _partitions, read_to_end
from nbp_assets.offers.stream.topics import ensure_topics
from nbp_assets_tests.kafka_helpers import produce, settings_for


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = start_broker(log=tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def cfg(broker, request):
    settings = settings_for(broker.bootstrap_servers, f"p{abs(hash(request.node.name)) % 10**8}_")
    ensure_topics(settings.admin(), settings.topic_prefix, settings.partitions)
    return settings


def _event(i: int, customer: str = "C1", **changes) -> bytes:
    value = {
        "ACTIVITY_ID": i,
        "IP_ADDRESS": "10.0.0.1",
        "CUSTOMER_ID": customer,
        "ACTIVITY_TYPE": "mobile_open",
        "PROPENSITY_TO_BUY": 0.5,
    }
    value.update(changes)
    return orjson.dumps({k: v for k, v in value.items() if v is not ...})


def _oversized_object(size: int) -> bytes:
    """A recipe object padded (in IP_ADDRESS) to exactly `size` bytes."""
    short = _event(900, IP_ADDRESS="")
    return _event(900, IP_ADDRESS="x" * (size - len(short)))


def _send(cfg, topic: str, rows: list[tuple[bytes | None, bytes | None]]) -> None:
    """Raw messages, as any producer may write them (up to 2 MB: the broker takes them)."""
    from confluent_kafka import Producer

    p = Producer(cfg.producer(**{"message.max.bytes": 2_000_000}))
    for key, value in rows:
        p.produce(t.name(topic, cfg.topic_prefix), value, key)
    assert p.flush(30) == 0


def _dead_letters(cfg) -> list[tuple[bytes | None, bytes | None, dict[str, str]]]:
    """(key, value, headers) of every dead letter."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    name = t.name(t.REJECTED, cfg.topic_prefix)
    c = Consumer(cfg.consumer(None, **{"enable.partition.eof": True}))
    out = []
    try:
        parts = [TopicPartition(name, p, OFFSET_BEGINNING) for p in _partitions(c, name)]
        c.assign(parts)
        read_to_end(c, parts, lambda m: out.append((m.key(), m.value(), {k: v.decode() for k, v in m.headers() or []})))
    finally:
        c.close()
    return out


def _run(cfg, offered: int, refused: int, log: list[str] | None = None, timeout: float = 30.0) -> Processor:
    """A processor (a restart, for the group) run until it has offered and refused this many."""
    lines = [] if log is None else log
    p = Processor(cfg, log=lines.append)
    p.run(
        until=lambda: (p.counters.offered >= offered and p.counters.rejected >= refused)
        or time.monotonic() - p.counters.started > timeout
    )
    return p


def _no_lag(cfg) -> bool:
    return set(consumer_lag(cfg, cfg.group, t.name(t.ACTIVITY, cfg.topic_prefix)).values()) == {0}


# The poison messages: each followed by a good event, then a restart.
POISON = [
    (b"C1", b"[1, 2]", "value: a JSON object, found list"),
    (b"C1", b"null", "value: a JSON object, found NoneType"),
    (b"C1", b"x" * 1_000_000, "over 65,536 bytes"),
    (b"\xff\xfe", _event(0), "not UTF-8"),
    (b"C2", _event(0), "the key disagrees with CUSTOMER_ID"),
    (b"C1", _event(0, PROPENSITY_TO_BUY="0.5"), "PROPENSITY_TO_BUY: a JSON number"),
]


def test_each_poison_message_is_dead_lettered_committed_and_a_restart_goes_on(cfg):
    produce(cfg, t.CUSTOMERS, [(b"C1", {"CUSTOMER_ID": "C1", "INCOME": 40_000, "FICO": 650})])
    for i, (key, value, why) in enumerate(POISON, start=1):
        _send(cfg, t.ACTIVITY, [(key, value), (b"C1", _event(i))])
        p = _run(cfg, offered=1, refused=1)  # a new processor each time: the restart after the last poison
        assert (p.counters.events, p.counters.offered, p.counters.rejected) == (1, 1, 1), why
        assert _no_lag(cfg), f"offset not committed after {why}"
    letters = _dead_letters(cfg)
    assert len(letters) == len(POISON)  # each once: no restart read a poison message again
    for key, value, why in POISON:
        match = [h for k, v, h in letters if k == key and v == value]
        assert len(match) == 1 and why in match[0]["nbp.reason"], (why, [h["nbp.reason"] for _, _, h in letters])
        assert match[0]["nbp.topic"] == t.name(t.ACTIVITY, cfg.topic_prefix)


def test_every_kind_of_bad_activity_message_in_one_batch_only_those_refused(cfg):
    produce(cfg, t.CUSTOMERS, [(b"C1", {"CUSTOMER_ID": "C1", "INCOME": 40_000, "FICO": 650})])
    bad = [
        (b"C1", b'"text"', "found str"),
        (b"C1", b"42", "found int"),
        (b"C1", b"{not json", "not JSON"),
        (b"C1", b"\xff{}", "not JSON"),  # invalid UTF-8 in the value
        (b"C1", None, "no value"),
        (b"C1", _event(0, ACTIVITY_TYPE=...), "missing field ACTIVITY_TYPE"),
        (b"C1", _event(0, ACTIVITY_ID=1.5), "ACTIVITY_ID: a JSON integer, found float"),
        (b"C1", _event(0, PROPENSITY_TO_BUY=1.5), "outside 0 to 1"),
        (b"C1", _event(0, PROPENSITY_TO_BUY=None), "found NoneType"),
        (b"C1", _event(0, PROPENSITY_TO_BUY=True), "found bool"),
        (b"C1", _event(0, CUSTOMER_ID=["C1"]), "CUSTOMER_ID"),
        (None, _event(0, CUSTOMER_ID=...), "no CUSTOMER_ID and no key"),
        (b"C1", _oversized_object(1_000_000), "over 65,536 bytes"),
    ]
    good = [(b"C1", _event(i)) for i in range(1, 4)] + [(b"C1", _event(4, CUSTOMER_ID=...)), (None, _event(5))]
    _send(cfg, t.ACTIVITY, good[:2] + [(k, v) for k, v, _ in bad] + good[2:])
    p = _run(cfg, offered=len(good), refused=len(bad))
    assert (p.counters.offered, p.counters.rejected) == (len(good), len(bad))
    reasons = sorted(h["nbp.reason"] for _, _, h in _dead_letters(cfg))
    for _, _, why in bad:
        assert any(why in r for r in reasons), (why, reasons)
    assert _no_lag(cfg)
    again = _run(cfg, offered=1, refused=1, timeout=4)  # the restart: nothing left to read
    assert (again.counters.events, again.counters.rejected) == (0, 0)


def test_bad_table_records_are_skipped_and_dead_lettered_at_start_up(cfg):
    _send(
        cfg,
        t.CUSTOMERS,
        [
            (b"C1", b"[1]"),
            (b"C1", b"{oops"),
            (b"C9", orjson.dumps({"CUSTOMER_ID": "C1", "INCOME": 1, "FICO": 700})),
            (b"C1", orjson.dumps({"CUSTOMER_ID": "C1", "INCOME": "40000", "FICO": 650})),
            (b"C1", orjson.dumps({"CUSTOMER_ID": "C1", "INCOME": 40_000, "FICO": 650})),
        ],
    )
    _send(
        cfg,
        t.OFFERS,
        [
            (b"two", orjson.dumps({"OFFER_ID": 2, "OFFER_NAME": "n", "OFFER_URL": "u"})),
            (b"3", orjson.dumps({"OFFER_ID": 3, "OFFER_URL": "u"})),
            (b"4", b"null"),  # JSON null, not a tombstone (a missing value deletes the offer)
        ],
    )
    _send(cfg, t.RULES, [(b"1", b"[]"), (b"2", orjson.dumps({"rules_version": 2, "rows": [{"bad": 1}]}))])
    _send(cfg, t.ACTIVITY, [(b"C1", _event(1))])
    log: list[str] = []
    p = _run(cfg, offered=1, refused=9, log=log)
    assert (p.counters.offered, p.counters.rejected) == (1, 9)
    assert p.state.customers.versions == 1 and p.state.offers == {}  # the good version; no bad offer
    letters = _dead_letters(cfg)
    topics = sorted(h["nbp.topic"].removeprefix(cfg.topic_prefix) for _, _, h in letters)
    assert topics == sorted([t.CUSTOMERS] * 4 + [t.OFFERS] * 3 + [t.RULES] * 2)
    reasons = " | ".join(h["nbp.reason"] for _, _, h in letters)
    for why in ("found list", "not JSON", "disagrees with CUSTOMER_ID", "INCOME", "invalid literal", "OFFER_NAME"):
        assert why in reasons, (why, reasons)
    assert sum("skipped, dead-lettered" in line for line in log) == 9
    assert any("9 refused (dead-lettered)" in line for line in log)
    # a restart starts too (refusing the same records again) and goes on
    _send(cfg, t.ACTIVITY, [(b"C1", _event(2))])
    again = _run(cfg, offered=1, refused=9)
    assert (again.counters.events, again.counters.offered) == (1, 1)


def test_the_size_limit_follows_the_topic_and_a_message_too_large_for_it_is_recorded(broker):
    from confluent_kafka.admin import AdminClient, NewTopic

    cfg = settings_for(broker.bootstrap_servers, "psmall_")
    admin = AdminClient(cfg.admin())
    rejected = t.name(t.REJECTED, cfg.topic_prefix)
    admin.create_topics([NewTopic(rejected, 2, 1, config={"max.message.bytes": "20000"})])[rejected].result(30)
    ensure_topics(cfg.admin(), cfg.topic_prefix, cfg.partitions)
    produce(cfg, t.CUSTOMERS, [(b"C1", {"CUSTOMER_ID": "C1", "INCOME": 40_000, "FICO": 650})])
    big = b"y" * 100_000
    _send(cfg, t.ACTIVITY, [(b"C1", big), (b"C1", _event(1))])
    log: list[str] = []
    p = _run(cfg, offered=1, refused=1, log=log)
    assert any(f"largest record sent: 20,000 bytes ({rejected} max.message.bytes)" in x for x in log), log
    recorded = [x for x in log if x.startswith("dead letter recorded and skipped")]
    assert len(recorded) == 1 and "key b'C1'" in recorded[0] and "100,002 bytes" in recorded[0], recorded
    assert f"{t.name(t.ACTIVITY, cfg.topic_prefix)}[" in recorded[0] and "]@0 " in recorded[0]  # where it was
    ((key, value, headers),) = _dead_letters(cfg)
    assert (key, value, headers["nbp.value-dropped"], headers["nbp.size"]) == (b"C1", None, "1", "100002")
    assert p.counters.offered == 1 and _no_lag(cfg)
    again = _run(cfg, offered=1, refused=1, timeout=4)
    assert (again.counters.events, again.counters.rejected) == (0, 0)


def test_the_limit_is_configurable_and_defaults_to_kafkas(broker):
    from dataclasses import replace

    from nbp_assets.offers.stream.deadletter import max_message_bytes

    cfg = settings_for(broker.bootstrap_servers, "plimit_")
    assert max_message_bytes(replace(cfg, max_message_bytes=3_000_000), "any") == (
        3_000_000,
        "NBP_KAFKA_MAX_MESSAGE_BYTES",
    )
    # tansu describes no limit it was not given: Kafka's default, not librdkafka's 1,000,000
    assert max_message_bytes(cfg, "no-such-topic")[0] == 1_048_588


class _FailingProducer:
    """The processor's producer, refusing the waiting-events changelog as a broker might."""

    def __init__(self, real, topic: str):
        self.real, self.topic = real, topic

    def produce(self, topic, *args, **kwargs):
        from confluent_kafka import KafkaError, KafkaException

        if topic == self.topic:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "changelog refused"))
        return self.real.produce(topic, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __len__(self):
        return len(self.real)


def test_a_failure_ends_the_log_with_its_cause_not_an_acknowledgement_timeout(cfg):
    from confluent_kafka import KafkaException

    _send(cfg, t.ACTIVITY, [(b"NEW", _event(1, "NEW"))])  # no record yet: it waits (the changelog)
    log: list[str] = []
    p = Processor(cfg, log=log.append)
    p.producer = _FailingProducer(p.producer, t.name(t.PENDING, cfg.topic_prefix))
    started = time.monotonic()
    with pytest.raises(KafkaException, match="changelog refused"):
        p.run(until=lambda: time.monotonic() - started > 30)
    assert time.monotonic() - started < 20  # no 60 s wait for output that was never queued
    assert not any("not acknowledged" in line for line in log), log
    assert "changelog refused" in log[-1] and log[-1].startswith("stopped by KafkaException"), log[-1]


def test_the_limit_is_read_from_nbp_kafka_max_message_bytes(monkeypatch):
    from nbp_assets.core.settings import ConfigurationError
    from nbp_assets.offers.stream.config import KafkaSettings

    monkeypatch.setenv("NBP_KAFKA_MAX_MESSAGE_BYTES", "3000000")
    assert KafkaSettings.from_env("127.0.0.1:1").max_message_bytes == 3_000_000
    monkeypatch.setenv("NBP_KAFKA_MAX_MESSAGE_BYTES", "1 MB")
    with pytest.raises(ConfigurationError, match="NBP_KAFKA_MAX_MESSAGE_BYTES '1 MB'"):
        KafkaSettings.from_env("127.0.0.1:1")
    monkeypatch.delenv("NBP_KAFKA_MAX_MESSAGE_BYTES")
    assert KafkaSettings.from_env("127.0.0.1:1").max_message_bytes is None  # follow the broker
