"""Dead letters: messages the processor cannot use, set aside on CUSTOMER_ACTIVITY_REJECTED
with the reason, so that one bad message never stops the offers of every other customer.

Each dead letter carries the message's key and value as they came, and headers:
`nbp.reason`, `nbp.topic`, `nbp.partition`, `nbp.offset` (where it came from), `nbp.size`
(its key and value bytes). A message too large even for the dead-letter topic is recorded
instead (the log line and a dead letter without its value, header `nbp.value-dropped`), never
retried: a record that cannot be forwarded must not stop the stream either.
"""

from __future__ import annotations

from nbp_assets.offers.stream.config import KafkaSettings

# Apache Kafka's default message.max.bytes: the limit when the broker describes none (tansu,
# and some managed brokers, describe only the settings made explicitly).
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
# the record's framing and the headers above, on top of key and value
RECORD_OVERHEAD = 512


def max_message_bytes(cfg: KafkaSettings, topic: str, timeout: float = 10.0) -> tuple[int, str]:
    """The largest record the dead-letter topic takes, and where that limit came from:
    NBP_KAFKA_MAX_MESSAGE_BYTES if set, else the topic's max.message.bytes, else the
    broker's message.max.bytes, else Kafka's default."""
    if cfg.max_message_bytes:
        return cfg.max_message_bytes, "NBP_KAFKA_MAX_MESSAGE_BYTES"
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(cfg.admin())
    brokers = sorted(admin.list_topics(timeout=timeout).brokers)
    wanted = [(ConfigResource.Type.TOPIC, topic, "max.message.bytes")]
    wanted += [(ConfigResource.Type.BROKER, str(b), "message.max.bytes") for b in brokers[:1]]
    for kind, name, key in wanted:
        try:
            entries = next(iter(admin.describe_configs([ConfigResource(kind, name)]).values())).result(timeout)
        except Exception:  # not described (an older broker, no permission): the next source
            continue
        if key in entries and entries[key].value:
            return int(entries[key].value), f"{name} {key}"
    return KAFKA_DEFAULT_MAX_MESSAGE_BYTES, "Kafka's default message.max.bytes"


class DeadLetters:
    """Sends refused messages to the dead-letter topic through the processor's producer."""

    def __init__(self, producer, topic: str, limit: int, log):
        self.producer, self.topic, self.limit, self.log = producer, topic, limit, log
        self.sent = 0
        self.skipped: list[str] = []  # the recorded messages that could not be forwarded whole

    def send(self, msg, why: str, on_delivery) -> bool:
        """Set one message aside with the reason. Returns whether a dead letter was produced
        (then on_delivery is called once, with no error if the broker refused it for its size:
        it is recorded, not retried)."""
        from confluent_kafka import KafkaException

        value, key = msg.value(), msg.key()
        size = len(value or b"") + len(key or b"")
        headers = {
            "nbp.reason": why,
            "nbp.topic": msg.topic(),
            "nbp.partition": str(msg.partition()),
            "nbp.offset": str(msg.offset()),
            "nbp.size": str(size),
        }
        if size + RECORD_OVERHEAD > self.limit:
            self._record(msg, size, f"{why}; over {self.topic}'s limit of {self.limit:,} bytes: sent without its value")
            value, headers["nbp.value-dropped"] = None, "1"
            key = key if key is None or len(key) + RECORD_OVERHEAD <= self.limit else None
        try:
            self._produce(value, key, headers, self._reported(msg, size, why, on_delivery))
        except KafkaException as exc:  # refused before sending (its size): recorded, skipped
            self._record(msg, size, f"{why}; not dead-lettered: {exc}")
            return False
        self.sent += 1
        return True

    def _produce(self, value, key, headers, on_delivery) -> None:
        try:
            self.producer.produce(self.topic, value, key, headers=headers, on_delivery=on_delivery)
        except BufferError:  # local queue full: let librdkafka send, then retry
            self.producer.poll(0.5)
            self.producer.produce(self.topic, value, key, headers=headers, on_delivery=on_delivery)

    def _reported(self, msg, size: int, why: str, on_delivery):
        from confluent_kafka import KafkaError

        too_large = (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE)
        where = (msg.topic(), msg.partition(), msg.offset(), msg.key())

        def reported(err, sent) -> None:
            if err is not None and err.code() in too_large:  # would be refused on every replay
                self._record_at(where, size, f"{why}; the broker refused its dead letter: {err}")
                err = None
            on_delivery(err, sent)

        return reported

    def _record(self, msg, size: int, why: str) -> None:
        self._record_at((msg.topic(), msg.partition(), msg.offset(), msg.key()), size, why)

    def _record_at(self, where: tuple, size: int, why: str) -> None:
        topic, partition, offset, key = where
        key_text = "none" if key is None else repr(key[:80]) + ("..." if len(key) > 80 else "")
        line = f"{topic}[{partition}]@{offset} key {key_text}, {size:,} bytes: {why}"
        self.skipped.append(line)
        self.log(f"dead letter recorded and skipped: {line}")
