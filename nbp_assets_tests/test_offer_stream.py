"""The offer stream as the daemon runs it: sensor ticks, micro-batch runs, a real DuckDB file.

Events are appended to nbp_source.activity the way the Kafka connector lands them. The
promises under test: each event gets exactly one offer row, whatever restarts or repeats;
an unknown customer's event waits and is then offered with the customer's first record;
each event joins the customer version of its own time; rules are data, versioned.
"""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from nbp_assets.definitions import build_definitions
from nbp_assets.offers import assets as nbo
from nbp_assets.offers import inputs
from nbp_assets.offers import stream_state as stream
from nbp_assets.offers.model import next_best_offers
from nbp_assets.offers.rules import DEFAULT_RULES_FILE
from nbp_assets_tests.offer_helpers import Stream, check, materialization

T = pd.Timestamp
# party, valid_from, income, fico. C1 changes on 2026-06-01: rich and offer 1 before, offer 2 after.
CUSTOMERS = [
    ("C1", "2026-01-01", 120_000, 650),  # WHEN 1
    ("C1", "2026-06-01", 40_000, 650),  # WHEN 2
    ("C2", "2026-01-01", None, 700),  # no income: no WHEN holds, ELSE 5
    ("C3", "2026-01-01", 40_000, None),  # no FICO, but WHEN 2 does not ask for one: 2 (as in SQL)
    ("C4", "2026-01-01", 75_000, 550),  # no WHEN covers it: ELSE 5
    ("C5", "2026-01-01", 150_000, 720),  # WHEN 3 (WHEN 4 never gets the chance)
]
# activity_id, party, event_time, propensity, expected OFFER_ID
EVENTS = [
    (1, "C1", "2026-05-31 23:59:59", 0.5, 1),
    (2, "C1", "2026-06-01 00:00:00", 0.5, 2),  # the new version starts exactly here
    (3, "C2", "2026-07-01 10:00:00", 0.5, 5),
    (4, "C3", "2026-07-01 10:00:00", 0.5, 2),
    (5, "C4", "2026-07-01 10:00:00", 0.5, 5),
    (6, "C5", "2026-07-01 10:00:00", 0.5, 3),
    (7, "C5", "2026-07-01 11:00:00", 0.9, 5),  # PROPENSITY_TO_BUY < 0.9 is strict
]


def customers_frame(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["party_id", "valid_from", "income", "fico"])
    starts = pd.to_datetime(df["valid_from"])
    following = starts.groupby(df["party_id"]).shift(-1)
    return pd.DataFrame(
        {
            "party_id": df["party_id"],
            "jurisdiction": "GB",
            "segment": "MASS",
            "age_band": "35-44",
            "gender": "F",
            "status": "ACTIVE",
            "income": pd.array(df["income"], dtype="Int64"),
            "fico": pd.array(df["fico"], dtype="Int64"),
            "valid_from": starts,
            "valid_to": following,
        }
    )


def events_frame(rows) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "activity_id": pd.array([r[0] for r in rows], dtype="Int64"),
            "party_id": [r[1] for r in rows],
            "event_time": pd.to_datetime([r[2] for r in rows]),
            "activity_type": "deposit",
            "propensity_to_buy": [float(r[3]) for r in rows],
            "ip_address": "10.0.0.1",
        }
    )


def land(s: Stream, table: str, frame: pd.DataFrame) -> None:
    """Append rows to a source table, as the Kafka connector or the CRM feed does."""
    with duckdb.connect(s.warehouse.database) as con:
        con.register("incoming", frame)
        con.execute(f"INSERT INTO nbp_source.{table} BY NAME SELECT * FROM incoming")


@pytest.fixture
def offer_stream(tmp_path, monkeypatch):
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    for var in ("NBP_WAREHOUSE_PATH", "NBP_DEPLOYMENT"):
        monkeypatch.delenv(var, raising=False)
    defs = build_definitions()
    defs.resources["warehouse"].replace_table("nbp_source.customers", customers_frame(CUSTOMERS))
    with duckdb.connect(defs.resources["warehouse"].database) as con:  # the connector's landing table
        con.execute(
            "CREATE TABLE nbp_source.activity (activity_id BIGINT, party_id VARCHAR, event_time TIMESTAMP, "
            "activity_type VARCHAR, propensity_to_buy DOUBLE, ip_address VARCHAR)"
        )
    with dg.instance_for_test() as instance:
        yield Stream(defs, instance)


def offered(s: Stream) -> dict[int, int]:
    df = s.offers()
    return dict(zip(df["ACTIVITY_ID"].tolist(), df["OFFER_ID"].tolist()))


def test_events_land_and_each_gets_exactly_one_offer_in_micro_batches(offer_stream):
    s = offer_stream
    first = s.evaluate()
    assert [r.job_name for r in first.run_requests] == [nbo.TABLES_JOB]  # offers and rules first

    land(s, "activity", events_frame(EVENTS[:4]))
    assert s.drain()[1:] == ["nbo-00000001"]
    land(s, "activity", events_frame(EVENTS[4:]))
    assert s.drain() == ["nbo-00000002"]
    assert "nothing new since batch nbo-00000002" in s.evaluate().skip_message

    assert offered(s) == {e[0]: e[4] for e in EVENTS}
    rows = s.offers()
    assert rows.groupby("BATCH_KEY")["ACTIVITY_ID"].apply(list).to_dict() == {
        "nbo-00000001": [1, 2, 3, 4],
        "nbo-00000002": [5, 6, 7],
    }
    # Point in time: each C1 event got the version valid at its own moment.
    assert rows.loc[rows["ACTIVITY_ID"].isin([1, 2]), "INCOME"].tolist() == [120_000, 40_000]
    assert rows["CUSTOMER_VALID_FROM"].tolist()[:2] == [T("2026-01-01"), T("2026-06-01")]
    assert (rows["RULES_VERSION"] == 1).all()
    lookup = s.lookup()
    assert lookup["ACTIVITY_ID"].tolist() == [e[0] for e in EVENTS]
    assert lookup.set_index("ACTIVITY_ID")["OFFER_NAME"].to_dict()[6] == "new_home_loan"


def test_restarted_sensor_repeats_its_run_key_and_a_repeated_batch_replaces_its_rows(offer_stream):
    s = offer_stream
    s.tick()  # tables
    land(s, "activity", events_frame(EVENTS))
    before_crash = s.cursor
    request = s.evaluate().run_requests[0]
    # The daemon died before saving the cursor: the next tick starts from the old one and
    # asks for the same batch under the same run_key, which Dagster launches only once.
    again = s.evaluate(before_crash).run_requests[0]
    assert (
        (again.run_key, again.run_config)
        == (request.run_key, request.run_config)
        == ("nbo-00000001", nbo.batch_run_config("nbo-00000001"))
    )

    first = s.launch(request)
    rows = s.offers()
    second = s.launch(request)  # even if it had run twice: same rows, no duplicates
    assert first.success and second.success
    pd.testing.assert_frame_equal(s.offers(), rows)
    assert len(rows) == len(EVENTS) == len(s.lookup())
    meta = materialization(second, "next_best_offer")
    assert (meta["events_replayed"], meta["events_new"], meta["replayed_offers_changed"]) == (len(EVENTS), 0, 0)


def test_unknown_customer_waits_then_gets_the_offer_of_its_first_record(offer_stream):
    s = offer_stream
    land(s, "activity", events_frame([EVENTS[0], (20, "C9", "2026-11-16 10:00:00", 0.5, None)]))
    s.drain()
    result = s.results[-1]
    waiting = check(result, "next_best_offer", nbo.WAITING)
    assert waiting.passed is False and waiting.severity == dg.AssetCheckSeverity.WARN
    assert materialization(result, "next_best_offer")["pending_events"] == 1
    assert 20 not in offered(s) and 20 not in s.lookup()["ACTIVITY_ID"].tolist()
    pending = s.sql(f"SELECT * FROM {stream.PENDING_TABLE}")
    assert pending[["ACTIVITY_ID", "CUSTOMER_ID", "FIRST_SEEN_BATCH"]].values.tolist() == [[20, "C9", "nbo-00000001"]]
    assert "1 event(s) waiting for a customer record" in s.evaluate().skip_message

    # The record arrives after the event (two versions): the event takes the first one.
    land(s, "customers", customers_frame([("C9", "2026-11-20", 30_000, 640), ("C9", "2026-12-01", 200_000, 650)]))
    assert s.drain() == ["nbo-00000002"]
    row = s.offers().set_index("ACTIVITY_ID").loc[20]
    assert (row["OFFER_ID"], row["INCOME"], row["CUSTOMER_VALID_FROM"], row["BATCH_KEY"]) == (
        2,
        30_000,
        T("2026-11-20"),
        "nbo-00000002",
    )
    assert s.sql(f"SELECT count(*) AS n FROM {stream.PENDING_TABLE}")["n"].item() == 0
    assert len(s.lookup()) == 2


def test_a_run_that_dies_after_offering_is_healed_by_the_next_batch(offer_stream, monkeypatch):
    s = offer_stream
    s.tick()  # tables
    with duckdb.connect(s.warehouse.database) as con:  # the lookup step will fail: offer 2 is gone
        con.execute(f"DELETE FROM {stream.OFFERS_TABLE} WHERE offer_id = 2")
    land(s, "activity", events_frame(EVENTS))
    s.tick()
    failed = s.results[-1]
    assert not failed.success
    assert check(failed, "next_best_offer_lookup", nbo.EVERY_OFFER_FOUND).passed is False
    assert len(s.offers()) == len(EVENTS) and not s.warehouse.table_exists(stream.LOOKUP_TABLE)
    assert "failed; retrying" in s.evaluate().skip_message  # no retry storm

    assert s.launch(dg.RunRequest(job_name=nbo.TABLES_JOB)).success  # an operator re-publishes the offers
    monkeypatch.setattr(nbo, "RETRY_AFTER_SECONDS", 0)
    assert s.drain() == ["nbo-00000002"]
    assert materialization(s.results[-1], "next_best_offer_lookup")["batches_rebuilt"] == [
        "nbo-00000001",
        "nbo-00000002",
    ]
    assert s.lookup()["ACTIVITY_ID"].tolist() == s.offers()["ACTIVITY_ID"].tolist() == [e[0] for e in EVENTS]


def test_two_batches_racing_for_the_same_events_leave_one_row_each(offer_stream):
    s = offer_stream
    land(s, "activity", events_frame(EVENTS))
    wh, rules = s.warehouse, inputs.rules(s.warehouse, pd.Series([1, 2, 3, 4, 5]))
    computed = {}
    for key in ("race-a", "race-b"):  # both read before either writes
        assert stream.claim(wh, key, limit=100) == (0, len(EVENTS))
        versions = inputs.customer_versions(wh, stream.parties_of(key))
        computed[key], _ = next_best_offers(stream.batch_events(wh, key), versions, rules, key)
    stream.write_offers(wh, "race-b", computed["race-b"])
    stream.write_offers(wh, "race-a", computed["race-a"])
    rows = s.offers()
    assert rows["ACTIVITY_ID"].tolist() == [e[0] for e in EVENTS]
    assert set(rows["BATCH_KEY"]) == {"race-a"}


def test_rules_are_data_versioned_by_time_and_published_versions_are_frozen(offer_stream):
    s = offer_stream
    recipe = pd.read_csv(DEFAULT_RULES_FILE)
    # Version 2 from 2026-12-01: the recipe's CASE with WHEN 3 and WHEN 4 swapped.
    v2 = recipe.assign(rules_version=2, valid_from="2026-12-01")
    v2.loc[v2["offer_id"] == 3, "priority"], v2.loc[v2["offer_id"] == 4, "priority"] = 4, 3
    s.warehouse.replace_table(
        "nbp_source.offer_rules",
        pd.concat([recipe, v2]).assign(valid_from=lambda d: pd.to_datetime(d["valid_from"], format="ISO8601")),
    )
    land(s, "activity", events_frame([EVENTS[5], (30, "C5", "2026-12-01 09:00:00", 0.5, 4)]))
    keys = s.drain()
    assert keys[0].startswith("offer-tables-") and keys[1:] == ["nbo-00000001"]
    coverage = check(s.results[0], "offer_rules", nbo.RULES_COVERAGE)
    assert coverage.metadata["rules_version"].value == 2 and coverage.metadata["unreachable_offers"].value == []
    rows = s.offers().set_index("ACTIVITY_ID")
    assert rows.loc[[6, 30], ["OFFER_ID", "RULES_VERSION", "RULE_PRIORITY"]].values.tolist() == [[3, 1, 3], [4, 2, 3]]

    # Editing a published version, or a new one that starts before an offered event, would
    # make a replay disagree with the first run: blocked, and the published rules stay.
    published = s.sql(f"SELECT * FROM {stream.RULES_TABLE} ORDER BY rules_version, priority")
    edited = pd.concat([recipe.assign(offer_id=lambda d: d["offer_id"].where(d["priority"] != 1, 2)), v2])
    third = recipe.assign(rules_version=3, valid_from="2026-12-01 08:00:00")
    s.warehouse.replace_table(
        "nbp_source.offer_rules",
        pd.concat([edited, third]).assign(valid_from=lambda d: pd.to_datetime(d["valid_from"], format="ISO8601")),
    )
    s.tick()
    blocked = s.results[-1]
    assert not blocked.success
    problems = check(blocked, "offer_rules", nbo.RULES_HISTORY)
    assert problems.passed is False and "2 row(s)" in problems.description
    pd.testing.assert_frame_equal(
        s.sql(f"SELECT * FROM {stream.RULES_TABLE} ORDER BY rules_version, priority"), published
    )


def test_one_batch_at_a_time(offer_stream):
    s = offer_stream
    s.tick()  # tables
    land(s, "activity", events_frame(EVENTS))
    running = DagsterRun(job_name=nbo.BATCH_JOB, status=dg.DagsterRunStatus.STARTED)
    s.instance.add_run(running)
    assert s.evaluate().skip_message == f"waiting for run {running.run_id} of {nbo.BATCH_JOB}"
    s.instance.report_run_failed(running)
    assert "failed; retrying" in s.evaluate().skip_message  # later, not at once


def test_a_propensity_landed_as_text_is_refused_as_the_stream_refuses_it(offer_stream):
    """The recipe types PROPENSITY_TO_BUY DOUBLE: '0.5' as text is refused on both paths (the
    stream dead-letters the message), never converted; the error names the table, the
    column and example rows."""
    from nbp_assets.contract.validation import ContractViolation

    s = offer_stream
    with duckdb.connect(s.warehouse.database) as con:  # a connector that lands the JSON field as text
        con.execute("ALTER TABLE nbp_source.activity ALTER propensity_to_buy TYPE VARCHAR")
    land(s, "activity", events_frame(EVENTS[:2]).assign(propensity_to_buy=["0.5", "0.5"]))
    with pytest.raises(ContractViolation) as refused:
        inputs.events(s.warehouse, "TRUE")
    message = str(refused.value)
    assert "nbp_source.activity" in message and "propensity_to_buy" in message, message
    assert "a number, found VARCHAR" in message and "0.5" in message, message
