"""The offer stream on Kafka, seen from Dagster (on when NBP_KAFKA_BOOTSTRAP_SERVERS is set).

Dagster stays the cockpit; the events flow through the stream processor
(`python -m nbp_assets kafka process`), not through runs:
- asset `offer_topics`: after `offer_rules` is published (checked), the offers and every
  rules version go to OFFERS_STREAM and NEXT_BEST_OFFER_RULES, where the processor picks them
  up within a batch. Only what changed is produced.
- check `stream_health` on it: consumer lag of the processor and of the warehouse sink, and
  events waiting for a customer record (WARN when anything is behind or waiting).
- sensor `next_best_offer_kafka_sensor` (every 30 s): requests `offer_topics_job` when
  `offer_rules` has a new materialization, and moves NEXT_BEST_OFFER and
  NEXT_BEST_OFFER_LOOKUP into the warehouse's next_best_offer_stream and lookup tables in
  micro-batches, deduplicated by ACTIVITY_ID (stream/sink.py);
  its status line says how many rows it moved and how far behind the stream is.
"""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd

from nbp_assets.core import settings
from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.offers import stream_state as stream

GROUP = "next_best_offer"
TOPICS_JOB = "offer_topics_job"
KAFKA_SENSOR = "next_best_offer_kafka_sensor"
HEALTH = "stream_health"
SINK_SECONDS = 20  # a sensor tick must end well within Dagster's 60 s evaluation limit
LAG_WARN = 10_000  # messages behind before the check warns


def _settings():
    from nbp_assets.offers.stream.config import KafkaSettings

    return KafkaSettings.from_env()


def publish(cfg, offers: pd.DataFrame, rules: pd.DataFrame) -> dict[str, list[int]]:
    """Produce the offers and rules versions that differ from what their topics hold."""
    from confluent_kafka import Producer

    from nbp_assets.offers.stream import topics as t
    from nbp_assets.offers.stream.lag import table_state

    t.ensure_topics(cfg.admin(), cfg.topic_prefix, cfg.partitions, cfg.replication)
    producer = Producer(cfg.producer())
    held_offers = table_state(cfg, t.OFFERS)
    held_rules = table_state(cfg, t.RULES)
    sent = {"offers": [], "rules_versions": []}
    for row in offers.itertuples(index=False):
        key, value = t.offer_message(int(row.offer_id), row.offer_name, row.offer_url)
        if held_offers.get(key) != json.loads(value):
            producer.produce(t.name(t.OFFERS, cfg.topic_prefix), value, key)
            sent["offers"].append(int(row.offer_id))
    for version, rows in rules.groupby("rules_version", sort=True):
        key, value = t.rules_message(rows)
        if held_rules.get(key) != json.loads(value):
            producer.produce(t.name(t.RULES, cfg.topic_prefix), value, key)
            sent["rules_versions"].append(int(version))
    if producer.flush(30):
        raise dg.Failure("the broker did not acknowledge the offers/rules within 30 s")
    return sent


def health(cfg) -> dict[str, int]:
    from nbp_assets.offers.stream import topics as t
    from nbp_assets.offers.stream.lag import consumer_lag, waiting_events
    from nbp_assets.offers.stream.sink import sink_group

    waiting = waiting_events(cfg)
    return {
        "processor_lag": sum(consumer_lag(cfg, cfg.group, t.name(t.ACTIVITY, cfg.topic_prefix)).values()),
        "sink_lag": sum(
            sum(consumer_lag(cfg, sink_group(cfg), t.name(x, cfg.topic_prefix)).values()) for x in (t.NBO, t.LOOKUP)
        ),
        "waiting_events": sum(waiting.values()),
        "waiting_customers": len(waiting),
    }


@dg.asset(
    group_name=GROUP,
    deps=["offers", "offer_rules"],
    check_specs=[
        dg.AssetCheckSpec(
            HEALTH,
            asset="offer_topics",
            blocking=False,
            description="Consumer lag of the stream processor and of the warehouse sink, "
            "and events waiting for their customer's record (they are offered when it "
            "arrives).",
        )
    ],
    kinds={"kafka"},
)
def offer_topics(warehouse: WarehouseResource):
    """The published offers and every rules version, on the Kafka topics the stream
    processor reads (OFFERS_STREAM, NEXT_BEST_OFFER_RULES): a new rules version is in
    force for events from its valid_from on, within a batch of being published."""
    cfg = _settings()
    sent = publish(
        cfg,
        stream.read_table(warehouse, stream.OFFERS_TABLE, order_by="offer_id"),
        stream.read_table(warehouse, stream.RULES_TABLE),
    )
    yield dg.MaterializeResult(
        metadata={
            "offers_produced": dg.MetadataValue.json(sent["offers"]),
            "rules_versions_produced": dg.MetadataValue.json(sent["rules_versions"]),
            "bootstrap_servers": cfg.bootstrap_servers,
        }
    )
    yield _health_result(cfg)


offer_topics_job = dg.define_asset_job(
    TOPICS_JOB,
    selection=dg.AssetSelection.assets(offer_topics),
    description="Publish the offers and rules to their Kafka topics.",
    executor_def=dg.in_process_executor,
)


@dg.sensor(
    name=KAFKA_SENSOR,
    jobs=[offer_topics_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 30 s: publish new offers/rules versions to Kafka, and move the offers and lookup "
    "topics into the warehouse (deduplicated by ACTIVITY_ID); says how far behind the stream is.",
)
def next_best_offer_kafka_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    return evaluate_kafka(context, warehouse)


def kafka_offer_definitions() -> dg.Definitions:
    return dg.Definitions(assets=[offer_topics], jobs=[offer_topics_job], sensors=[next_best_offer_kafka_sensor])


def _health_result(cfg) -> dg.AssetCheckResult:
    h = health(cfg)
    behind = h["processor_lag"] + h["sink_lag"]
    passed = behind < LAG_WARN and h["waiting_events"] == 0
    return dg.AssetCheckResult(
        check_name=HEALTH,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"processor {h['processor_lag']:,} behind, sink {h['sink_lag']:,} behind, "
        f"{h['waiting_events']:,} event(s) of {h['waiting_customers']:,} customer(s) waiting",
        metadata=h,
    )


def evaluate_kafka(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    from nbp_assets.offers.stream.sink import Sink

    cursor = json.loads(context.cursor) if context.cursor else {}
    cfg = _settings()
    requests = []
    latest = context.instance.get_latest_materialization_event(dg.AssetKey("offer_rules"))
    marker = f"{latest.run_id}-{latest.timestamp:.3f}" if latest is not None else None
    if marker is not None and marker != cursor.get("rules_published"):
        requests.append(dg.RunRequest(job_name=TOPICS_JOB, run_key=f"offer-topics-{marker}"))
        cursor["rules_published"] = marker
    sink = Sink(cfg, warehouse, member=False)
    try:
        received, inserted = sink.drain(idle_seconds=1.0, max_seconds=SINK_SECONDS)
    finally:
        sink.close()
    h = health(cfg)
    status = (
        f"sank {inserted['offers']:,} new offer row(s) and {inserted['lookup']:,} new lookup row(s) of "
        f"{received:,} message(s); processor lag {h['processor_lag']:,}, "
        f"sink lag {h['sink_lag']:,}, {h['waiting_events']:,} event(s) waiting for a customer record"
    )
    context.log.info(status)
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor), skip_reason=None if requests else status)


def definitions_if_configured() -> list[dg.Definitions]:
    """The Kafka path's definitions when NBP_KAFKA_BOOTSTRAP_SERVERS is set; none otherwise
    (the warehouse landing path alone, as for banks that use the Snowflake Kafka connector)."""
    return [kafka_offer_definitions()] if settings.kafka_bootstrap_servers() else []
