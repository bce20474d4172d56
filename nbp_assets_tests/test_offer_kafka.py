"""The recipe on real Kafka topics: a tansu broker started here on a free 127.0.0.1 port
(stopped by its pid), the stream processor, the warehouse sink.

- The recipe's own INSERT data, produced as messages, gives on NEXT_BEST_OFFER_LOOKUP exactly
  the rows the recipe's two SELECTs give when DuckDB runs them on the same data.
- An event of an unknown customer waits, survives a restart, and is offered when the record
  arrives; a customer's later version applies to later events only.
- The processor killed with SIGKILL mid-stream and restarted: every event offered, none lost;
  after the sink's dedupe exactly one warehouse row per event in next_best_offer_stream and
  in the lookup table.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from nbp_assets.core.warehouse import DuckDBWarehouse
from nbp_assets.offers.stream import topics as t
from nbp_assets.offers.stream.broker import start_broker
from nbp_assets.offers.stream.config import KafkaSettings
from nbp_assets.offers.stream.lag import consumer_lag, waiting_events
from nbp_assets.offers.stream.processor import Processor
from nbp_assets.offers.stream.sink import STREAM_NBO_TABLE, Sink
from nbp_assets.offers.stream.topics import ensure_topics
from nbp_assets.offers.stream_state import LOOKUP_TABLE
from nbp_assets_tests.kafka_helpers import (
    count_until,
    lookup_rows,
    produce,
    producer,
    read_topic,
    settings_for,
    wait_for,
)
from nbp_assets_tests.test_offer_recipe import RECIPE_INSERTS, STAGING_DDL

# The recipe's two persistent queries (their SELECTs, verbatim), run by DuckDB as the oracle.
RECIPE_NEXT_BEST_OFFER = """
SELECT 
cask.ACTIVITY_ID,
cask.CUSTOMER_ID as CUSTOMER_ID,
cask.PROPENSITY_TO_BUY,
cask.ACTIVITY_TYPE,
ct.INCOME,
ct.FICO,
CASE  
    WHEN ct.INCOME > 100000 AND ct.FICO < 700 AND cask.PROPENSITY_TO_BUY < 0.9 THEN 1
    WHEN ct.INCOME < 50000 AND cask.PROPENSITY_TO_BUY < 0.9 THEN 2
    WHEN ct.INCOME >= 50000 AND ct.FICO >= 600 AND cask.PROPENSITY_TO_BUY < 0.9 THEN 3
    WHEN ct.INCOME > 100000 AND ct.FICO >= 700 AND cask.PROPENSITY_TO_BUY < 0.9 THEN 4
    ELSE 5
END AS OFFER_ID 
FROM customer_activity_stream cask
INNER JOIN customers ct ON cask.CUSTOMER_ID = ct.CUSTOMER_ID
"""
RECIPE_LOOKUP = """
SELECT
    nbo.OFFER_ID,
    nbo.ACTIVITY_ID,
    nbo.CUSTOMER_ID,
    nbo.PROPENSITY_TO_BUY,
    nbo.ACTIVITY_TYPE,
    nbo.INCOME,
    nbo.FICO,
    ot.OFFER_NAME,
    ot.OFFER_URL
FROM next_best_offer nbo
INNER JOIN OFFERS ot
ON nbo.OFFER_ID = ot.OFFER_ID
"""


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = start_broker(log=tmp_path_factory.mktemp("tansu") / "tansu.log")
    assert b.bootstrap_servers.startswith("127.0.0.1:")
    try:
        yield b
    finally:
        b.stop()
    assert b.process.poll() is not None


@pytest.fixture
def cfg(broker, request) -> KafkaSettings:
    """Topics of their own for each test (a prefix), with settings_for's partitions."""
    settings = settings_for(broker.bootstrap_servers, f"t{abs(hash(request.node.name)) % 10**8}_")
    ensure_topics(settings.admin(), settings.topic_prefix, settings.partitions)
    return settings


def _recipe_tables() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(STAGING_DDL)
    for statement in RECIPE_INSERTS.strip().splitlines():
        con.execute(statement)
    return con


def _produce_recipe(cfg: KafkaSettings, con: duckdb.DuckDBPyConnection) -> None:
    """The staged INSERT rows as messages: key CUSTOMER_ID / OFFER_ID, JSON values."""
    offers = con.sql("SELECT * FROM offers ORDER BY OFFER_ID").df()
    produce(
        cfg,
        t.OFFERS,
        [
            (str(r.OFFER_ID).encode(), {k: (int(v) if k == "OFFER_ID" else v) for k, v in r._asdict().items()})
            for r in offers.itertuples(index=False)
        ],
    )
    customers = con.sql("SELECT * FROM customers ORDER BY CUSTOMER_ID").df()
    produce(cfg, t.CUSTOMERS, [(str(r["CUSTOMER_ID"]).encode(), r) for r in _records(customers)])
    activity = con.sql("SELECT * FROM customer_activity_stream ORDER BY ACTIVITY_ID").df()
    produce(cfg, t.ACTIVITY, [(str(r["CUSTOMER_ID"]).encode(), r) for r in _records(activity)])


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in frame.to_dict("records")]


def test_recipe_inserts_as_messages_give_the_recipes_lookup_rows(cfg):
    con = _recipe_tables()
    _produce_recipe(cfg, con)
    processor = Processor(cfg, log=lambda s: None)
    processor.run(until=lambda: processor.counters.offered >= 10 or time.monotonic() - processor.counters.started > 30)

    con.execute(f"CREATE TABLE next_best_offer AS {RECIPE_NEXT_BEST_OFFER}")
    expected = con.sql(RECIPE_LOOKUP + " ORDER BY ACTIVITY_ID").df()
    got = lookup_rows(cfg).sort_values("ACTIVITY_ID", ignore_index=True)
    assert list(got.columns) == list(expected.columns) == t.LOOKUP_FIELDS
    assert len(got) == len(expected) == 10
    pd.testing.assert_frame_equal(got.astype(str), expected.astype(str), check_dtype=False)
    assert got["CUSTOMER_ID"].map(type).eq(int).all()  # the recipe's INTEGER stays a JSON number
    # the recipe's outcome, independently of DuckDB: nine new_savings, no_offer for activity 7 (propensity 0.97)
    assert got.set_index("ACTIVITY_ID")["OFFER_NAME"].to_dict() == {
        i: "no_offer" if i == 7 else "new_savings" for i in range(1, 11)
    }
    nbo = pd.DataFrame([v for _, v, _ in read_topic(cfg, t.NBO)])
    assert sorted(nbo["ACTIVITY_ID"]) == list(range(1, 11))
    assert set(nbo.columns) == set(t.NBO_FIELDS)
    # keyed by ACTIVITY_ID, so a replayed duplicate is recognisable by key
    keys = [k for k, _, _ in read_topic(cfg, t.LOOKUP)]
    assert sorted(int(k) for k in keys) == list(range(1, 11))


def _activity(i: int, customer: str, propensity: float = 0.5) -> tuple[bytes, dict]:
    return customer.encode(), {
        "ACTIVITY_ID": i,
        "IP_ADDRESS": "10.0.0.1",
        "CUSTOMER_ID": customer,
        "ACTIVITY_TYPE": "mobile_open",
        "PROPENSITY_TO_BUY": propensity,
    }


def _customer(customer: str, income: int | None, fico: int | None, valid_from: str | None = None) -> tuple[bytes, dict]:
    value = {"CUSTOMER_ID": customer, "INCOME": income, "FICO": fico}
    if valid_from:
        value["VALID_FROM"] = valid_from
    return customer.encode(), value


def test_unknown_customer_waits_across_a_restart_and_versions_apply_by_event_time(cfg):
    produce(
        cfg,
        t.CUSTOMERS,
        [_customer("C1", 40_000, 650, "2026-01-01T00:00:00"), _customer("C1", 150_000, 650, "2026-06-01T00:00:00")],
    )
    may, june = (
        int(pd.Timestamp(x, tz="Europe/London").timestamp() * 1000) for x in ("2026-05-31 12:00", "2026-06-01 12:00")
    )
    produce(
        cfg, t.ACTIVITY, [_activity(1, "C1"), _activity(2, "C1"), _activity(3, "NEW")], timestamps=[may, june, june]
    )
    first = Processor(cfg, log=lambda s: None)
    first.run(until=lambda: first.counters.events >= 3)
    assert (first.counters.offered, first.counters.events) == (2, 3)
    assert waiting_events(cfg) == {"NEW": 1}
    assert consumer_lag(cfg, cfg.group, t.name(t.ACTIVITY, cfg.topic_prefix)) == {p: 0 for p in range(cfg.partitions)}

    # a new process: the waiting event comes back from the changelog, not from the activity topic
    produce(cfg, t.CUSTOMERS, [_customer("NEW", 120_000, 720)])
    second = Processor(cfg, log=lambda s: None)
    second.run(until=lambda: second.counters.released >= 1 or time.monotonic() - second.counters.started > 30)
    assert second.counters.events == 0 and second.counters.released == 1

    offers = {v["ACTIVITY_ID"]: v for _, v, _ in read_topic(cfg, t.NBO)}
    assert sorted(offers) == [1, 2, 3]
    assert (offers[1]["INCOME"], offers[1]["OFFER_ID"]) == (40_000, 2)  # the May version: INCOME < 50000
    assert (offers[2]["INCOME"], offers[2]["OFFER_ID"]) == (150_000, 1)  # the June version: > 100000, FICO < 700
    assert offers[3]["OFFER_ID"] == 3 and offers[3]["CUSTOMER_VALID_FROM"] is not None
    assert waiting_events(cfg) == {}  # the changelog says nothing waits any more


def _process_cli(cfg: KafkaSettings, log: Path, workers: int = 1) -> subprocess.Popen:
    env = {
        **os.environ,
        "NBP_KAFKA_BOOTSTRAP_SERVERS": cfg.bootstrap_servers,
        "NBP_KAFKA_TOPIC_PREFIX": cfg.topic_prefix,
        "NBP_KAFKA_GROUP": cfg.group,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "nbp_assets", "kafka", "process", "--max-batch", "500", "--workers", str(workers)],
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )


def test_sigkill_mid_stream_loses_nothing_and_the_sink_keeps_one_row_per_event(cfg, tmp_path):
    import threading

    n = 10_000
    produce(cfg, t.CUSTOMERS, [_customer(f"P{c}", 30_000 + 1_000 * c, 500 + c) for c in range(300)])
    events = [_activity(i, f"P{i % 300}" if i % 1000 else "LATE", (i % 100) / 100) for i in range(1, n + 1)]
    produce(cfg, t.ACTIVITY, events[:1_000])
    log = tmp_path / "processor.log"
    t0 = time.monotonic()
    first = _process_cli(cfg, log)

    def feed() -> None:  # the rest arrives while the processor works (~5,000 events/s)
        p = producer(cfg)
        for start in range(1_000, n, 250):
            for key, value in events[start : start + 250]:
                p.produce(t.name(t.ACTIVITY, cfg.topic_prefix), json.dumps(value).encode(), key)
            p.flush(30)
            time.sleep(0.05)
        assert p.flush(30) == 0

    feeder = threading.Thread(target=feed)
    try:
        count_until(cfg, t.LOOKUP, 999, 60)  # the processor is up (event 1000 waits for LATE)
        feeder.start()
        seen_at_kill = count_until(cfg, t.LOOKUP, 3_000, 60)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
        if feeder.ident is not None:
            feeder.join(60)
    print(f"killed at {time.monotonic() - t0:.1f}s")
    assert first.returncode == -signal.SIGKILL
    assert seen_at_kill < n - 30  # killed mid-stream, while events were still arriving

    produce(cfg, t.CUSTOMERS, [_customer("LATE", 20_000, 600)])  # the waiting events' customer arrives
    # restarted as two worker processes of one group: they split the partitions, and each
    # restores the waiting events of its own partitions from the changelog
    log = tmp_path / "workers.log"
    second = _process_cli(cfg, log, workers=2)
    try:
        wait_for(
            lambda: len({v["ACTIVITY_ID"] for _, v, _ in read_topic(cfg, t.LOOKUP)}) >= n,
            90,
            f"all {n} events offered after the restart ({log.read_text()[-500:] if log.exists() else ''})",
        )
        print(f"all offered at {time.monotonic() - t0:.1f}s")
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    finally:
        if second.poll() is None:
            os.kill(second.pid, signal.SIGKILL)
    text = log.read_text()
    assert second.returncode == 0, text[-2000:]
    assert text.count("] stopped; offsets committed") == 2  # SIGTERM reached both workers
    latest = dict(re.findall(r"^\[worker (\d)/2\] assigned partition\(s\) \[([\d, ]*)\]", text, re.M))
    owned = [{int(p) for p in latest[w].split(",")} for w in ("1", "2")]
    assert owned[0] and owned[1] and not owned[0] & owned[1] and owned[0] | owned[1] == set(range(cfg.partitions)), (
        latest
    )

    messages = read_topic(cfg, t.LOOKUP)
    ids = pd.Series([v["ACTIVITY_ID"] for _, v, _ in messages])
    assert set(ids) == set(range(1, n + 1))  # none lost
    late = [v for _, v, _ in messages if v["CUSTOMER_ID"] == "LATE"]
    assert {v["ACTIVITY_ID"] for v in late} == set(range(1000, n + 1, 1000))
    assert all(v["OFFER_ID"] == (2 if v["PROPENSITY_TO_BUY"] < 0.9 else 5) for v in late)  # INCOME 20000
    duplicates = int(ids.duplicated().sum())
    # a duplicate carries the same value as the first: safe to drop by key
    first_seen = {}
    for key, value, _ in messages:
        assert int(key) == value["ACTIVITY_ID"]
        assert first_seen.setdefault(value["ACTIVITY_ID"], value) == value

    offers = read_topic(cfg, t.NBO)
    assert len(offers) >= n and {v["ACTIVITY_ID"] for _, v, _ in offers} == set(range(1, n + 1))

    warehouse = DuckDBWarehouse(database=str(tmp_path / "warehouse.duckdb"), temp_directory=str(tmp_path / "tmp"))
    sink = Sink(cfg, warehouse, group=f"{cfg.topic_prefix}sink")
    try:
        received, inserted = sink.drain(idle_seconds=1.5)
    finally:
        sink.close()
    assert len(messages) == n + duplicates
    assert received == len(messages) + len(offers)
    assert inserted == {"offers": n, "lookup": n}
    for table in (LOOKUP_TABLE, STREAM_NBO_TABLE):
        counts = warehouse.query(f"SELECT count(*) AS n, count(DISTINCT ACTIVITY_ID) AS ids FROM {table}").iloc[0]
        assert (int(counts["n"]), int(counts["ids"])) == (n, n), table
    late = warehouse.query(f"SELECT * FROM {STREAM_NBO_TABLE} WHERE CUSTOMER_ID = 'LATE' ORDER BY ACTIVITY_ID")
    assert late["ACTIVITY_ID"].tolist() == list(range(1000, n + 1, 1000))
    assert late["INCOME"].tolist() == [20_000] * len(late) and set(late["BATCH_KEY"]) == {"kafka"}
    print(
        f"killed after {seen_at_kill} lookup messages; {duplicates} duplicate(s) replayed; "
        f"{n} warehouse rows after dedupe"
    )


def test_sink_replay_inserts_nothing_twice(cfg, tmp_path):
    rows = [
        (
            str(i).encode(),
            {
                "OFFER_ID": 1,
                "ACTIVITY_ID": i,
                "CUSTOMER_ID": 1,
                "PROPENSITY_TO_BUY": 0.4,
                "ACTIVITY_TYPE": "deposit",
                "INCOME": None,
                "FICO": 465,
                "OFFER_NAME": "new_savings",
                "OFFER_URL": "u",
            },
        )
        for i in (1, 2, 2, 3)
    ]
    produce(cfg, t.LOOKUP, rows)
    offered = {
        "CUSTOMER_ID": 1,
        "PROPENSITY_TO_BUY": 0.4,
        "ACTIVITY_TYPE": "deposit",
        "INCOME": None,
        "FICO": 465,
        "OFFER_ID": 1,
        "EVENT_TIME": "2026-06-01T12:00:00.250",
        "RULES_VERSION": 1,
        "RULE_PRIORITY": 2,
        "CUSTOMER_VALID_FROM": "2026-01-01T00:00:00.000",
    }
    produce(cfg, t.NBO, [(str(i).encode(), {"ACTIVITY_ID": i, **offered}) for i in (1, 1, 2, 3, 3)])
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"))
    # the sensor's way (no group membership), again from the committed offsets, then a second
    # group that re-reads everything: a sink that lost its offsets inserts nothing twice
    none = {"offers": 0, "lookup": 0}
    for group, expected in (("a", (9, {"offers": 3, "lookup": 3})), ("a", (0, none)), ("b", (9, none))):
        sink = Sink(cfg, warehouse, group=f"{cfg.topic_prefix}{group}", member=False)
        try:
            got = sink.drain(idle_seconds=1.0)
        finally:
            sink.close()
        assert got == expected, group
    table = warehouse.query(f"SELECT ACTIVITY_ID, INCOME, CUSTOMER_ID FROM {LOOKUP_TABLE} ORDER BY 1")
    assert table["ACTIVITY_ID"].tolist() == [1, 2, 3]
    assert table["INCOME"].isna().all() and table["CUSTOMER_ID"].tolist() == ["1", "1", "1"]
    audit = warehouse.query(f"SELECT * FROM {STREAM_NBO_TABLE} ORDER BY ACTIVITY_ID")
    assert audit["ACTIVITY_ID"].tolist() == [1, 2, 3] and audit["INCOME"].isna().all()
    assert str(audit.at[0, "EVENT_TIME"]) == "2026-06-01 12:00:00.250000" and set(audit["BATCH_KEY"]) == {"kafka"}


def test_settings_never_show_secrets(monkeypatch):
    monkeypatch.setenv("NBP_KAFKA_BOOTSTRAP_SERVERS", "broker-1:9092")
    monkeypatch.setenv("NBP_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("NBP_KAFKA_SASL_USERNAME", "KEY123")
    monkeypatch.setenv("NBP_KAFKA_SASL_PASSWORD", "s3cret-value")
    cfg = KafkaSettings.from_env()
    assert cfg.producer()["sasl.password"] == "s3cret-value"
    assert cfg.producer()["partitioner"] == "murmur2_random"
    assert "s3cret-value" not in cfg.describe() + repr(cfg)
    monkeypatch.delenv("NBP_KAFKA_SASL_PASSWORD")
    from nbp_assets.core.settings import ConfigurationError

    with pytest.raises(ConfigurationError, match="NBP_KAFKA_SASL_PASSWORD"):
        KafkaSettings.from_env()


def test_dagster_publishes_offers_and_rules_sinks_the_lookup_and_shows_lag(cfg, tmp_path, monkeypatch):
    import dagster as dg

    from nbp_assets.definitions import build_definitions
    from nbp_assets.offers import assets as nbo
    from nbp_assets.offers import kafka_assets as k

    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NBP_WAREHOUSE_PATH", raising=False)
    monkeypatch.setenv("NBP_KAFKA_BOOTSTRAP_SERVERS", cfg.bootstrap_servers)
    monkeypatch.setenv("NBP_KAFKA_TOPIC_PREFIX", cfg.topic_prefix)
    monkeypatch.setenv("NBP_KAFKA_GROUP", cfg.group)
    defs = build_definitions()
    sensor = defs.resolve_sensor_def(k.KAFKA_SENSOR)
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def(nbo.TABLES_JOB).execute_in_process(instance=instance).success
        tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=defs.resources))
        assert [r.job_name for r in tick.run_requests] == [k.TOPICS_JOB]
        run = defs.resolve_job_def(k.TOPICS_JOB).execute_in_process(instance=instance)
        meta = run.asset_materializations_for_node("offer_topics")[0].metadata
        assert (meta["offers_produced"].value, meta["rules_versions_produced"].value) == ([1, 2, 3, 4, 5], [1])
        again = defs.resolve_job_def(k.TOPICS_JOB).execute_in_process(instance=instance)
        meta = again.asset_materializations_for_node("offer_topics")[0].metadata
        assert (meta["offers_produced"].value, meta["rules_versions_produced"].value) == ([], [])  # only changes

        con = _recipe_tables()
        _produce_recipe(cfg, con)
        produce(cfg, t.ACTIVITY, [_activity(11, "NOBODY")])
        processor = Processor(cfg, log=lambda s: None)
        processor.run(until=lambda: processor.counters.events >= 11)
        assert processor.state.rules.source == "NEXT_BEST_OFFER_RULES"  # the published rules, not the default

        tick = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=tick.cursor, resources=defs.resources)
        )
        assert not tick.run_requests
        assert "sank 10 new offer row(s) and 10 new lookup row(s) of 20 message(s)" in tick.skip_message
        assert "1 event(s) waiting" in tick.skip_message
        rows = defs.resources["warehouse"].query(f"SELECT * FROM {LOOKUP_TABLE} ORDER BY ACTIVITY_ID")
        assert rows["ACTIVITY_ID"].tolist() == list(range(1, 11))
        audit = defs.resources["warehouse"].query(f"SELECT * FROM {STREAM_NBO_TABLE} ORDER BY ACTIVITY_ID")
        assert audit["ACTIVITY_ID"].tolist() == list(range(1, 11))
        assert audit["OFFER_ID"].tolist() == rows["OFFER_ID"].tolist()
        health = defs.resolve_job_def(k.TOPICS_JOB).execute_in_process(instance=instance).get_asset_check_evaluations()
        assert [(e.check_name, e.passed) for e in health] == [(k.HEALTH, False)]  # WARN: one event waits
        assert health[0].metadata["waiting_events"].value == 1
        assert health[0].metadata["processor_lag"].value == 0 and health[0].metadata["sink_lag"].value == 0


def test_record_timestamps_become_london_wall_time_across_clock_changes():
    import numpy as np

    spring = int(pd.Timestamp("2026-03-29 01:00", tz="UTC").timestamp() * 1000)  # GMT -> BST
    autumn = int(pd.Timestamp("2026-10-25 01:00", tz="UTC").timestamp() * 1000)  # BST -> GMT
    batches = [
        [spring - 1, spring],
        [spring - 3_600_000, spring + 3_600_000],
        [autumn - 1, autumn],
        [spring - 1, autumn + 1],
        [spring + 5, spring + 9],
    ]
    for ms in batches:
        expected = pd.to_datetime(ms, unit="ms", utc=True).tz_convert("Europe/London").tz_localize(None)
        assert (t.local_time(ms) == expected.to_numpy("datetime64[ns]")).all(), ms
    assert str(t.local_time([spring])[0]) == "2026-03-29T02:00:00.000000000"
    columns = t.activity_columns(
        [{"ACTIVITY_ID": 1, "ACTIVITY_TYPE": "deposit", "PROPENSITY_TO_BUY": 0.5}], [b"C9"], [spring], [3]
    )
    assert (columns["party_id"][0], columns["customer_raw"][0], columns["partition"][0]) == ("C9", "C9", 3)
    assert np.isnan(columns["propensity_to_buy"][0]) is np.False_


def test_the_streams_step_gives_the_warehouse_paths_rows_byte_for_byte():
    """The processor's column step against the warehouse path's DataFrame code (the oracle):
    versions arriving out of order and in two parts, two versions starting at the same
    instant (the later arrival wins), events before a customer's first version, NULL
    incomes, unknown customers, and an offer missing from the offers table."""
    import json

    import numpy as np

    from nbp_assets.offers.model import lookup, next_best_offers
    from nbp_assets.offers.rules import load_rules
    from nbp_assets.offers.stream.state import OfferState
    from nbp_assets.offers.synthetic import synthetic_stream

    events, versions = synthetic_stream(5_000, 400, seed=11)
    rng = np.random.default_rng(5)
    tied = versions.sample(60, random_state=1).assign(income=pd.array([None] * 60, dtype="Int64"))
    early = versions.drop_duplicates("party_id").sample(40, random_state=2)
    early = early.assign(valid_from=pd.Timestamp("2027-06-01"), fico=pd.array(rng.integers(300, 850, 40), "Int64"))
    versions = pd.concat([versions, tied, early], ignore_index=True).sample(frac=1, random_state=3)
    events.loc[events.index[:50], "event_time"] = pd.Timestamp("2024-06-01")  # before every first version
    state = OfferState()
    for part in (versions.iloc[: len(versions) // 2], versions.iloc[len(versions) // 2 :]):
        state.add_customer_versions(
            part["party_id"].tolist(),
            part["valid_from"].astype("int64").tolist(),
            part["income"].astype(object).where(part["income"].notna(), None).tolist(),
            part["fico"].astype(object).where(part["fico"].notna(), None).tolist(),
        )
    offers = pd.DataFrame({"offer_id": [1, 2, 3, 4], "offer_name": list("abcd"), "offer_url": list("ABCD")})
    for r in offers.itertuples():
        state.set_offer(r.offer_id, {"OFFER_NAME": r.offer_name, "OFFER_URL": r.offer_url})  # 5 is missing
    columns = {c: events[c].to_numpy() for c in ("activity_id", "party_id", "activity_type", "ip_address")}
    columns |= {
        "activity_id": events["activity_id"].to_numpy("int64"),
        "event_time": events["event_time"].to_numpy("datetime64[ns]"),
        "propensity_to_buy": events["propensity_to_buy"].to_numpy("float64"),
        "customer_raw": events["party_id"].to_numpy(object),
        "partition": np.zeros(len(events), dtype="int64"),
    }
    step = state.step(columns)

    nbo, pending = next_best_offers(events, versions.reset_index(drop=True), load_rules(), "oracle")
    rows, unmatched = lookup(nbo, offers)
    assert len(pending) == state.pending_count > 0 and len(unmatched) == step.unmatched_offers > 0
    assert 0 < len(rows) < len(nbo)
    assert t.nbo_messages(step.nbo) == t.json_lines(nbo[t.NBO_FIELDS])
    assert t.lookup_messages(step.lookup) == t.json_lines(rows[t.LOOKUP_FIELDS])
    before_first = json.loads(t.nbo_messages(step.nbo)[0])
    assert before_first["EVENT_TIME"] < before_first["CUSTOMER_VALID_FROM"]
