"""Kafka client settings for the offer stream, from the NBP_KAFKA_* environment variables.

Secrets (SASL password, TLS key passphrase) stay inside the client configuration dicts;
`describe()` and repr() show only redacted values, so nothing here logs a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nbp_assets.core import settings
from nbp_assets.core.settings import KAFKA_SECRET_VARIABLES, ConfigurationError

_SECRET_PROPERTIES = ("sasl.password", "ssl.key.password")
assert len(_SECRET_PROPERTIES) == len(KAFKA_SECRET_VARIABLES)


@dataclass(frozen=True)
class KafkaSettings:
    """Where the offer stream's topics live and how to reach them."""

    bootstrap_servers: str
    client: dict[str, str] = field(default_factory=dict, repr=False)  # security properties, secrets included
    topic_prefix: str = ""
    partitions: int = 6
    replication: int = 1
    group: str = "nbp-next-best-offer"
    compression: str = "none"
    linger_ms: int = 5
    max_message_bytes: int | None = None  # None: the dead-letter topic's (or broker's) limit

    @classmethod
    def from_env(cls, bootstrap_servers: str | None = None) -> "KafkaSettings":
        servers = bootstrap_servers or settings.kafka_bootstrap_servers()
        if not servers:
            raise ConfigurationError(
                "NBP_KAFKA_BOOTSTRAP_SERVERS is not set: the offer stream needs a Kafka cluster "
                "(for a local one: python -m nbp_assets kafka broker)"
            )
        return cls(
            servers,
            settings.kafka_client_properties(),
            settings.kafka_topic_prefix(),
            settings.kafka_partitions(),
            settings.kafka_replication(),
            settings.kafka_group(),
            settings.kafka_compression(),
            settings.kafka_linger_ms(),
            settings.kafka_max_message_bytes(),
        )

    def describe(self) -> str:
        shown = {k: ("***" if k in _SECRET_PROPERTIES else v) for k, v in self.client.items()}
        return f"{self.bootstrap_servers} {shown}"

    def common(self) -> dict:
        return {"bootstrap.servers": self.bootstrap_servers, **self.client}

    def producer(self, **extra) -> dict:
        # acks=all + idempotence: an acknowledged offer is on every in-sync replica, and a
        # librdkafka retry never writes it twice. murmur2_random: Java's (and ksqlDB's)
        # partitioner, so a key lands where every other Kafka client puts it.
        # Compression off and a 5 ms linger by default: on the local broker lz4 tripled the
        # broker's own two-hop p99 (67-91 ms vs 20-40 ms), and a 1 ms linger sent a produce
        # request up to every millisecond at 1,000 events/s, which tansu serves one by one (p99 40-211 ms
        # vs 20-27 ms at 5 ms). On a real cluster lz4 saves network and broker disk: set
        # NBP_KAFKA_COMPRESSION=lz4 there (docs/next-best-offer.md).
        return {
            **self.common(),
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": self.linger_ms,
            "compression.type": self.compression,
            **extra,
        }

    def consumer(self, group: str | None = None, **extra) -> dict:
        conf = {
            **self.common(),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # a restarted processor rejoins in seconds, not the default ~45 s
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "fetch.wait.max.ms": 5,
            **extra,
        }
        if group is not None:
            conf["group.id"] = group
        else:  # table readers are assigned partitions: no group, nothing committed
            conf["group.id"] = "nbp-table-reader-unused"
        return conf

    def admin(self) -> dict:
        return self.common()
