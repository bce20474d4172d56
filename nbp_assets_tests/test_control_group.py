"""The control group (issue 22.5): a stable share of the active customers, drawn by
md5(salt ':' party_id), is ranked and kept in the history but not published to nbp_current,
recorded in nbp_work.control_group, and compared with the treated customers in
offer_outcomes (nbp_work.control_outcomes)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from nbp_assets.core import settings
from nbp_assets.core.partitions import Week
from nbp_assets.core.settings import ConfigurationError
from nbp_assets.core.sql import render
from nbp_assets.core.warehouse import HISTORY_TABLE, SOURCE_SCHEMA, DuckDBWarehouse
from nbp_assets.definitions import WEEKLY_JOB, build_definitions
from nbp_assets.fairness.maths import difference_interval, wilson_interval
from nbp_assets.monitoring import model as monitoring
from nbp_assets.monitoring.assets import build_monitoring_assets
from nbp_assets.monitoring.control import ALL_PRODUCTS
from nbp_assets.publish import postgres as pg
from nbp_assets.publish.control import ControlGroup, control_group_sql, record
from nbp_assets.sources.synthetic import generate

pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")  # fakesnow's

REPO_ROOT = Path(__file__).resolve().parents[1]
WEEK = Week.from_key("2026-11-09")
PREVIOUS = Week.from_key("2026-11-02")
SALT = "nbp-control-1"
IDS = [f"P{i:07d}" for i in range(3000)] + ["P'quote", "", "PÜnï"]


def _python_held_out(ids, share: float, salt: str = SALT) -> set[str]:
    """The reference: hashlib, independent of publish/control.py."""
    threshold = int(share * 2**32)
    return {p for p in ids if int(hashlib.md5(f"{salt}:{p}".encode()).hexdigest()[:8], 16) < threshold}


def _customers_relation(ids, inactive=()) -> str:
    rows = [(p, "ACTIVE") for p in ids] + [(p, "CLOSED") for p in inactive]
    values = ", ".join("('" + p.replace("'", "''") + f"', '{s}')" for p, s in rows)
    return f"(SELECT party_id, status FROM (VALUES {values}) AS v(party_id, status))"


# ----------------------------------------------------------------------------- the hash


def test_the_hash_is_the_same_in_duckdb_through_fakesnow_and_in_python():
    import fakesnow
    import snowflake.connector

    control = ControlGroup(0.2, SALT)
    closed = ["P9999998", "P9999999"]  # held out by the hash, but not active: never in the group
    assert _python_held_out(closed, 1.0) and all(control.bucket(p) >= 0 for p in closed)
    sql = control_group_sql(_customers_relation(IDS, inactive=closed), control)
    want = _python_held_out(IDS, 0.2)
    assert want == {p for p in IDS if control.holds_out(p)}
    assert 0.17 < len(want) / len(IDS) < 0.23  # ~20 %

    in_duckdb = duckdb.sql(sql).df()
    assert set(in_duckdb["party_id"]) == want
    assert (in_duckdb["share"] == 0.2).all() and (in_duckdb["salt_digest"] == control.salt_digest).all()
    with fakesnow.patch():
        cur = snowflake.connector.connect(database="NBP_T", schema="S").cursor()
        cur.execute(sql)
        assert {row[0] for row in cur.fetchall()} == want

    # another salt draws another group; a larger share keeps everyone of the smaller one
    assert _python_held_out(IDS, 0.2, "other-salt") != want
    assert want <= _python_held_out(IDS, 0.3)


def test_share_zero_publishes_exactly_the_weeks_history_rows_as_before():
    assert not ControlGroup(0.0, SALT).on and not ControlGroup(0.0, SALT).holds_out("P0000001")
    text = render("publish", "week_rows", history="H", week="W", **ControlGroup(0.0, SALT).week_rows_params()).text
    assert text == (
        "SELECT party_id, jurisdiction, CAST(rank AS INTEGER) AS rank, product_id, CAST(score AS DOUBLE) AS score,\n"
        "       primary_signal, model_version, evaluated_at\nFROM H\nWHERE W"
    )


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize("value", ["abc", "-0.1", "0.51", "1", "nan", "inf", "20%", "0,2"])
def test_a_bad_share_is_one_line_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("NBP_CONTROL_GROUP_SHARE", value)
    with pytest.raises(ConfigurationError) as err:
        settings.control_group_share()
    message = str(err.value)
    assert "\n" not in message and "NBP_CONTROL_GROUP_SHARE" in message and repr(value) in message
    with pytest.raises(ConfigurationError):
        build_definitions()  # the definitions refuse to load


@pytest.mark.parametrize("value", ["has space", "x" * 65, "semi;colon", "quote'", "  "])
def test_a_bad_salt_is_one_line_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("NBP_CONTROL_GROUP_SALT", value)
    with pytest.raises(ConfigurationError) as err:
        settings.control_group_salt()
    message = str(err.value)
    assert "\n" not in message and "NBP_CONTROL_GROUP_SALT" in message and repr(value) in message


def test_defaults_and_good_values(monkeypatch):
    monkeypatch.delenv("NBP_CONTROL_GROUP_SHARE", raising=False)
    monkeypatch.delenv("NBP_CONTROL_GROUP_SALT", raising=False)
    assert settings.control_group_share() == 0 and settings.control_group_salt() == SALT
    monkeypatch.setenv("NBP_CONTROL_GROUP_SHARE", " 0.5 ")
    monkeypatch.setenv("NBP_CONTROL_GROUP_SALT", "bank-2027.q1:v2")
    assert settings.control_group_share() == 0.5 and settings.control_group_salt() == "bank-2027.q1:v2"


@pytest.mark.parametrize("command", [["materialize", "--week", WEEK.key], ["backfill", PREVIOUS.key, WEEK.key]])
def test_the_cli_refuses_a_bad_share_with_exit_2_and_writes_nothing(tmp_path, command):
    home = tmp_path / "home"
    env = {**os.environ, "NBP_HOME": str(home), "NBP_CONTROL_GROUP_SHARE": "0.7"}
    env.pop("DAGSTER_HOME", None)
    done = subprocess.run(
        [sys.executable, "-m", "nbp_assets", *command], env=env, cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "NBP_CONTROL_GROUP_SHARE '0.7'" in lines[0], done.stderr
    assert not home.exists()


def test_check_names_the_control_group_and_refuses_a_bad_salt(tmp_path, monkeypatch):
    env = {**os.environ, "NBP_HOME": str(tmp_path / "home"), "NBP_CONTROL_GROUP_SALT": "no spaces please"}
    env.pop("NBP_POSTGRES_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "nbp_assets", "check"], env=env, cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "NBP_CONTROL_GROUP_SALT 'no spaces please'" in lines[0], done.stderr
    assert not (tmp_path / "home").exists()

    from nbp_assets.resources import _control_group_line

    monkeypatch.delenv("NBP_CONTROL_GROUP_SHARE", raising=False)
    assert _control_group_line() == "control group: off (NBP_CONTROL_GROUP_SHARE 0)"
    monkeypatch.setenv("NBP_CONTROL_GROUP_SHARE", "0.1")
    assert (
        _control_group_line() == "control group: 0.1 of active customers held out of nbp_current (salt 'nbp-control-1')"
    )


# ----------------------------------------------------------------------------- the record, in both engines


def _week_customers(ids, week: Week) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "week_start": pd.Timestamp(week.start),
            "party_id": ids,
            "jurisdiction": "GB",
            "segment": "MASS",
            "age_band": "25-34",
            "gender": None,
            "status": ["CLOSED" if i % 10 == 0 else "ACTIVE" for i in range(n)],
            "income": pd.array([50_000] * n, dtype="Int64"),
            "fico": pd.array([700] * n, dtype="Int64"),
        }
    )


def _record(warehouse, customers: pd.DataFrame, control: ControlGroup) -> pd.DataFrame:
    with warehouse.session():
        warehouse.replace_table("nbp_work.customers", customers)
        from nbp_assets.publish.control import prepare

        assert prepare(warehouse, control)
        with warehouse.transaction() as tx:
            record(tx, WEEK, control)
        return warehouse.query("SELECT * FROM nbp_work.control_group").sort_values("party_id").reset_index(drop=True)


def test_the_record_is_the_same_in_duckdb_and_snowflake(tmp_path, monkeypatch):
    import fakesnow

    from nbp_assets.resources import open_warehouse

    ids = [f"P{i:07d}" for i in range(1000)]
    customers = _week_customers(ids, WEEK)
    active = customers.loc[customers["status"] == "ACTIVE", "party_id"]
    control = ControlGroup(0.2, SALT)
    local = _record(
        DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "t")), customers, control
    )
    assert set(local["party_id"]) == _python_held_out(active, 0.2)
    assert (local["week_start"] == pd.Timestamp(WEEK.start)).all() and (local["share"] == 0.2).all()

    for var, value in {
        "SNOWFLAKE_ACCOUNT": "nbp-test-account",
        "SNOWFLAKE_USER": "NBP_ENGINE",
        "SNOWFLAKE_PASSWORD": "Pa55-word-x1",
        "SNOWFLAKE_WAREHOUSE": "NBP_WH",
        "SNOWFLAKE_DATABASE": "NBP_TEST",
        "NBP_POSTGRES_URL": "postgresql://nobody@localhost/none",
        "NBP_HOME": str(tmp_path / "home"),
    }.items():
        monkeypatch.setenv(var, value)
    (tmp_path / "fakesnow").mkdir()
    with fakesnow.patch(db_path=tmp_path / "fakesnow"):
        snowflake = _record(open_warehouse("production"), customers, control)
    pd.testing.assert_frame_equal(snowflake, local, check_dtype=False)


# ----------------------------------------------------------------------------- a whole week


@pytest.fixture
def bank(tmp_path, monkeypatch, clean_postgres):
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NBP_POSTGRES_URL", clean_postgres)
    monkeypatch.setenv("NBP_CONTROL_GROUP_SHARE", "0.2")
    monkeypatch.delenv("NBP_CONTROL_GROUP_SALT", raising=False)
    monkeypatch.delenv("NBP_WEIGHTS_FILE", raising=False)
    defs = build_definitions()
    for name, df in generate(1500, 11, end_week=WEEK.start, history_weeks=3).items():
        defs.resources["warehouse"].replace_table(f"{SOURCE_SCHEMA}.{name}", df)
    return defs


def _run(defs, week: Week) -> dg.ExecuteInProcessResult:
    result = defs.resolve_job_def(WEEKLY_JOB).execute_in_process(
        partition_key=week.key, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert result.success
    return result


@pytest.mark.integration
def test_held_out_customers_are_ranked_and_recorded_but_never_published(bank):
    wh = bank.resources["warehouse"]
    result = _run(bank, WEEK)
    at = f"TIMESTAMP '{WEEK.evaluated_at:%Y-%m-%d %H:%M:%S}'"
    history = wh.query(f"SELECT * FROM {HISTORY_TABLE} WHERE evaluated_at = {at} ORDER BY party_id, rank")
    active = wh.query(
        f"SELECT party_id FROM nbp_work.customers WHERE week_start = DATE '{WEEK.key}' AND status = 'ACTIVE'"
    )
    group = wh.query(f"SELECT * FROM nbp_work.control_group WHERE week_start = DATE '{WEEK.key}'")
    held_out = set(group["party_id"])

    # exactly the active customers the hash holds out: ~20 % of them
    assert held_out == _python_held_out(active["party_id"], 0.2)
    assert 0.15 < len(held_out) / len(active) < 0.25
    assert (group["share"] == 0.2).all() and group["party_id"].is_unique
    # ranked and stored as usual ...
    assert held_out & set(history["party_id"])
    # ... but not published: nbp_current is the history less the held-out customers, row for row
    current = pg.read_current(bank.resources["postgres"].conninfo())
    assert not held_out & set(current["party_id"])
    treated = history[~history["party_id"].isin(held_out)].reset_index(drop=True)
    cols = ["party_id", "rank", "product_id", "primary_signal", "model_version"]
    pd.testing.assert_frame_equal(current[cols].reset_index(drop=True), treated[cols])
    meta = {k: v.value for k, v in result.asset_materializations_for_node("nbp_current")[-1].metadata.items()}
    ranked_held = len(held_out & set(history["party_id"]))
    assert meta["held_out_customers"] == len(held_out) and meta["held_out_ranked"] == ranked_held
    assert meta["treated_customers"] == history["party_id"].nunique() - ranked_held == current["party_id"].nunique()

    # stable across runs (a re-run) and weeks (an older week: recorded, not published)
    _run(bank, WEEK)
    again = wh.query(f"SELECT party_id FROM nbp_work.control_group WHERE week_start = DATE '{WEEK.key}'")
    assert set(again["party_id"]) == held_out and len(again) == len(held_out)
    _run(bank, PREVIOUS)
    before = wh.query(f"SELECT party_id FROM nbp_work.control_group WHERE week_start = DATE '{PREVIOUS.key}'")
    active_before = wh.query(
        f"SELECT party_id FROM nbp_work.customers WHERE week_start = DATE '{PREVIOUS.key}' AND status = 'ACTIVE'"
    )
    both = set(active["party_id"]) & set(active_before["party_id"])
    assert set(before["party_id"]) & both == held_out & both and both
    assert set(pg.read_current(bank.resources["postgres"].conninfo())["party_id"]) == set(current["party_id"])

    # switched off: the week's record is emptied and nbp_current is the whole history again
    os.environ["NBP_CONTROL_GROUP_SHARE"] = "0"  # the fixture's monkeypatch restores it
    _run(bank, WEEK)
    assert (
        wh.query(f"SELECT count(*) AS n FROM nbp_work.control_group WHERE week_start = DATE '{WEEK.key}'")["n"][0] == 0
    )
    whole = pg.read_current(bank.resources["postgres"].conninfo())
    pd.testing.assert_frame_equal(whole[cols].reset_index(drop=True), history[cols])


# ----------------------------------------------------------------------------- offer_outcomes


def test_offer_outcomes_compares_treated_with_held_out_per_product(tmp_path):
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"))
    mon, day = pd.Timestamp(WEEK.start), pd.Timedelta(days=1)
    ids = [f"P{i:03d}" for i in range(80)]
    customers = _week_customers(ids, WEEK).assign(status="ACTIVE")
    warehouse.replace_table("nbp_work.customers", customers)
    # the top 3 current during the week (the previous week's ranking), held-out rows included
    ranked = pd.DataFrame(
        {
            "party_id": ids,
            "jurisdiction": "GB",
            "rank": 1,
            "product_id": "SAV",
            "score": 0.5,
            "primary_signal": "idle_cash",
            "model_version": "m1",
            "evaluated_at": mon,
        }
    )
    warehouse.replace_table(HISTORY_TABLE, ranked)
    # held out that week: P000..P019
    group = pd.DataFrame(
        {"week_start": pd.Timestamp(PREVIOUS.start), "party_id": ids[:20], "share": 0.25, "salt_digest": "d"}
    )
    warehouse.replace_table("nbp_work.control_group", group)
    # SAV: held out accept 5 of 20, treated 40 of 60; CARD (not ranked for anyone): 1 of 2 and 3 of 4
    accepted = {*ids[:5], *ids[20:60]}
    offers = [(f"O{i}", p, "SAV", "ACCEPTED" if p in accepted else "REJECTED") for i, p in enumerate(ids)]
    offers += [("C1", ids[0], "CARD", "ACCEPTED"), ("C2", ids[1], "CARD", "REJECTED")]
    offers += [(f"C{i}", ids[i], "CARD", "ACCEPTED" if i < 73 else "REJECTED") for i in range(70, 74)]
    offers += [("N1", "P999", "SAV", "ACCEPTED")]  # a customer not ranked that week: in neither arm
    history = pd.DataFrame(offers, columns=["offer_id", "party_id", "product_id", "outcome"])
    history = history.assign(offered_at=mon + day, outcome_at=mon + 2 * day)
    warehouse.replace_table(f"{SOURCE_SCHEMA}.offer_history", history)
    asset = next(a for a in build_monitoring_assets() if a.key.path[-1] == "offer_outcomes")
    result = dg.materialize([asset], partition_key=WEEK.key, resources={"warehouse": warehouse}, raise_on_error=False)
    assert result.success

    table = warehouse.query("SELECT * FROM nbp_work.control_outcomes").set_index("product_id")
    assert list(table.index) == [ALL_PRODUCTS, "CARD", "SAV"]
    sav = table.loc["SAV"]
    assert [sav["treated_offered"], sav["treated_accepted"], sav["held_out_offered"], sav["held_out_accepted"]] == [
        60,
        40,
        20,
        5,
    ]
    assert sav["treated_acceptance_rate"] == pytest.approx(40 / 60) and sav[
        "held_out_acceptance_rate"
    ] == pytest.approx(0.25)
    low, high = wilson_interval([40, 5], [60, 20])
    assert [sav["treated_ci_low"], sav["held_out_ci_low"]] == pytest.approx(list(low))
    assert [sav["treated_ci_high"], sav["held_out_ci_high"]] == pytest.approx(list(high))
    assert sav["difference_pp"] == pytest.approx((40 / 60 - 0.25) * 100, abs=1e-4)
    d_low, d_high = difference_interval(40, 60, 5, 20)
    assert sav["difference_ci_low_pp"] == pytest.approx(float(d_low) * 100, abs=1e-4)
    assert (
        sav["difference_ci_low_pp"]
        < sav["difference_pp"]
        < sav["difference_ci_high_pp"]
        == pytest.approx(float(d_high) * 100, abs=1e-4)
    )
    card = table.loc["CARD"]
    assert [card["treated_offered"], card["treated_accepted"], card["held_out_offered"], card["held_out_accepted"]] == [
        4,
        3,
        2,
        1,
    ]
    everything = table.loc[ALL_PRODUCTS]
    assert [everything["treated_offered"], everything["held_out_offered"]] == [64, 22]
    assert [everything["treated_accepted"], everything["held_out_accepted"]] == [43, 6]

    # a held-out customer's ranking was not published: their offers followed no recommendation
    rates = warehouse.query("SELECT * FROM nbp_work.offer_outcomes").set_index(["by", "group"])
    assert rates.loc[("rank", "1"), "offered"] == 60
    assert rates.loc[("rank", monitoring.NOT_RECOMMENDED), "offered"] == 20 + 6  # N1: P999 is no customer of the week
    meta = result.asset_materializations_for_node("offer_outcomes")[0].metadata
    assert meta["control_group_week"].value == PREVIOUS.key and "held_out" in meta["treated_vs_held_out"].value


def test_without_a_control_group_offer_outcomes_writes_no_comparison(tmp_path):
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"))
    warehouse.replace_table("nbp_work.customers", _week_customers(["P001"], WEEK))
    warehouse.replace_table(
        f"{SOURCE_SCHEMA}.offer_history",
        pd.DataFrame(
            {
                "offer_id": ["O1"],
                "party_id": ["P001"],
                "product_id": ["SAV"],
                "offered_at": [pd.Timestamp(WEEK.start) + pd.Timedelta(days=1)],
                "outcome": ["ACCEPTED"],
                "outcome_at": [pd.Timestamp(WEEK.start) + pd.Timedelta(days=2)],
            }
        ),
    )
    asset = next(a for a in build_monitoring_assets() if a.key.path[-1] == "offer_outcomes")
    result = dg.materialize([asset], partition_key=WEEK.key, resources={"warehouse": warehouse}, raise_on_error=False)
    assert result.success
    assert not warehouse.table_exists("nbp_work.control_outcomes")
    assert "treated_vs_held_out" not in result.asset_materializations_for_node("offer_outcomes")[0].metadata


def test_a_week_whose_group_was_off_writes_an_empty_comparison(tmp_path):
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"))
    mon = pd.Timestamp(WEEK.start)
    warehouse.replace_table("nbp_work.customers", _week_customers(["P001"], WEEK).assign(status="ACTIVE"))
    ranked = pd.DataFrame(
        {
            "party_id": ["P001"],
            "jurisdiction": "GB",
            "rank": 1,
            "product_id": "SAV",
            "score": 0.5,
            "primary_signal": "idle_cash",
            "model_version": "m1",
            "evaluated_at": mon,
        }
    )
    warehouse.replace_table(HISTORY_TABLE, ranked)
    # a group was on in another week only
    other = pd.DataFrame(
        {"week_start": [pd.Timestamp("2026-10-26")], "party_id": ["P001"], "share": 0.2, "salt_digest": "d"}
    )
    warehouse.replace_table("nbp_work.control_group", other)
    offers = pd.DataFrame(
        {
            "offer_id": ["O1"],
            "party_id": ["P001"],
            "product_id": ["SAV"],
            "offered_at": [mon + pd.Timedelta(days=1)],
            "outcome": ["ACCEPTED"],
            "outcome_at": [mon + pd.Timedelta(days=2)],
        }
    )
    warehouse.replace_table(f"{SOURCE_SCHEMA}.offer_history", offers)
    asset = next(a for a in build_monitoring_assets() if a.key.path[-1] == "offer_outcomes")
    result = dg.materialize([asset], partition_key=WEEK.key, resources={"warehouse": warehouse}, raise_on_error=False)
    assert result.success
    assert warehouse.query("SELECT count(*) AS n FROM nbp_work.control_outcomes")["n"][0] == 0
    rates = warehouse.query("SELECT * FROM nbp_work.offer_outcomes").set_index(["by", "group"])
    assert rates.loc[("rank", "1"), "offered"] == 1  # published that week: a recommendation followed
