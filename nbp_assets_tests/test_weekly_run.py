"""A whole week through the real graph: DuckDB warehouse + a real PostgreSQL.

Also the operational promises: safe re-runs, backfills that never overwrite a newer
current week, point-in-time inputs, and bad input that publishes nothing.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import duckdb
import pandas as pd
import pytest

from nbp_assets.core.partitions import Week
from nbp_assets.core.warehouse import HISTORY_TABLE, SOURCE_SCHEMA
from nbp_assets.definitions import WEEKLY_JOB, build_definitions
from nbp_assets.publish import postgres as pg
from nbp_assets.sources.synthetic import generate

pytestmark = pytest.mark.integration

WEEK = Week.from_key("2026-11-09")
PREVIOUS = Week.from_key("2026-11-02")
CUSTOMERS = 1500


@pytest.fixture
def bank(tmp_path, monkeypatch, clean_postgres):
    """A fresh local deployment with a small synthetic bank: 3 weeks up to WEEK."""
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NBP_POSTGRES_URL", clean_postgres)
    monkeypatch.delenv("NBP_WEIGHTS_FILE", raising=False)
    defs = build_definitions()
    warehouse = defs.resources["warehouse"]
    for name, df in generate(CUSTOMERS, 11, end_week=WEEK.start, history_weeks=3).items():
        warehouse.replace_table(f"{SOURCE_SCHEMA}.{name}", df)
    return defs


def run_week(defs: dg.Definitions, week: Week, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(WEEKLY_JOB).execute_in_process(
        partition_key=week.key, instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False
    )


def wh(defs: dg.Definitions, sql: str) -> pd.DataFrame:
    return defs.resources["warehouse"].query(sql)


def history(defs, week: Week) -> pd.DataFrame:
    return wh(
        defs,
        f"SELECT * FROM {HISTORY_TABLE} WHERE evaluated_at = TIMESTAMP '{week.evaluated_at:%Y-%m-%d %H:%M:%S}' ORDER BY party_id, rank",
    )


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    mats = result.asset_materializations_for_node(asset)
    assert mats, f"{asset} was not materialized"
    return {k: v.value for k, v in mats[-1].metadata.items()}


def test_whole_week_lands_in_warehouse_and_postgres(bank):
    result = run_week(bank, WEEK)
    assert result.success
    ranked = history(bank, WEEK)
    current = pg.read_current(bank.resources["postgres"].conninfo())

    # The apps' table holds exactly this week's history rows.
    assert len(current) == len(ranked) > 0
    cols = ["party_id", "rank", "product_id", "primary_signal", "model_version"]
    pd.testing.assert_frame_equal(current[cols].reset_index(drop=True), ranked[cols].reset_index(drop=True))
    assert (current["evaluated_at"] == pd.Timestamp(WEEK.evaluated_at)).all()
    assert (current["score"].astype(float).round(6) == ranked["score"].astype(float).round(6)).all()

    # Eligibility gate against the raw MOD-105 snapshot the week used.
    snap = wh(
        bank,
        f"SELECT party_id, product_id FROM {SOURCE_SCHEMA}.eligibility "
        f"WHERE eligibility_status = 'ELIGIBLE' AND as_of_date = DATE '{WEEK.evaluation_date - timedelta(days=1)}'",
    )
    allowed = set(zip(snap["party_id"], snap["product_id"]))
    assert set(zip(ranked["party_id"], ranked["product_id"])) <= allowed

    # Only active customers, at most 3 each, ranks 1..n.
    customers = wh(bank, f"SELECT party_id, status FROM nbp_work.customers WHERE week_start = DATE '{WEEK.key}'")
    active = set(customers.loc[customers["status"] == "ACTIVE", "party_id"])
    assert set(ranked["party_id"]) <= active
    assert ranked.groupby("party_id")["rank"].apply(lambda r: list(r) == list(range(1, len(r) + 1))).all()
    assert ranked.groupby("party_id").size().max() == 3

    # model_version on every row, in the metadata, and as the asset's code version.
    version = bank.get_assets_def("nbp_ranked").code_versions_by_key[dg.AssetKey("nbp_ranked")]
    assert (ranked["model_version"] == version).all()
    assert metadata(result, "nbp_ranked")["model_version"] == version
    assert metadata(result, "nbp_ranked")["customers_ranked"] == ranked["party_id"].nunique()
    assert metadata(result, "nbp_current")["published"] is True
    fairness = metadata(result, "fairness_report")
    assert fairness["model_version"] == version

    # Every asset's contract check ran and passed.
    evaluations = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    for asset in [
        "customers",
        "activity",
        "eligibility",
        "signals",
        "scores",
        "nbp_ranked",
        "nbp_current",
        "fairness_report",
    ]:
        assert evaluations[(asset, "contract")] is True, asset


def test_rerun_replaces_and_backfill_never_overwrites_newer_current(bank):
    instance = dg.DagsterInstance.ephemeral()  # one instance: its check results are read below
    assert run_week(bank, WEEK, instance).success
    first = history(bank, WEEK)
    assert run_week(bank, WEEK, instance).success  # re-run: same rows, no duplicates
    again = history(bank, WEEK)
    pd.testing.assert_frame_equal(first, again)
    assert wh(bank, f"SELECT count(*) AS n FROM {HISTORY_TABLE}")["n"].item() == len(first)

    backfill = run_week(bank, PREVIOUS, instance)  # an older week after a newer one
    assert backfill.success
    # Not published, and recorded as an observation, not a materialization: nbp_current's
    # latest materialization (what the UI shows) stays the week the apps see.
    assert not backfill.asset_materializations_for_node("nbp_current")
    observed = [
        {k: v.value for k, v in o.metadata.items()} for o in backfill.asset_observations_for_node("nbp_current")
    ]
    assert [(o["published"], o["week"]) for o in observed] == [(False, PREVIOUS.key)]
    assert (
        observed[0]["outcome"]
        == f"skipped: week {PREVIOUS.key} is older than week {WEEK.key}, which the apps already see"
    )
    assert instance.get_latest_materialization_event(dg.AssetKey("nbp_current")).dagster_event.partition == WEEK.key
    url = bank.resources["postgres"].conninfo()
    assert pg.current_evaluated_at(url) == WEEK.evaluated_at
    assert len(history(bank, PREVIOUS)) > 0  # but history has the old week too
    weeks = wh(bank, "SELECT DISTINCT week_start FROM nbp_work.scores ORDER BY 1")["week_start"]
    assert [d.date() for d in weeks] == [PREVIOUS.start, WEEK.start]
    assert_check_results_per_week(instance, runs=3)


def assert_check_results_per_week(instance: dg.DagsterInstance, runs: int) -> None:
    """The UI answers "did week X pass the eligibility gate / the fairness check?"."""
    assert len(instance.get_runs()) == runs
    for run in instance.get_runs():
        week = run.tags["dagster/partition"]
        checks_run = [
            e.get_dagster_event().asset_check_evaluation_data
            for e in instance.all_logs(run.run_id)
            if e.is_dagster_event and e.get_dagster_event().event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        assert {c.check_name for c in checks_run} >= {"contract", "eligibility_gate", "fairness_gap_within_threshold"}
        assert {c.partition for c in checks_run} == {week}


def test_backfill_reads_inputs_as_of_its_own_week(bank):
    assert run_week(bank, PREVIOUS).success
    elig = wh(bank, f"SELECT DISTINCT snapshot_date FROM nbp_work.eligibility WHERE week_start = DATE '{PREVIOUS.key}'")
    assert [d.date() for d in elig["snapshot_date"]] == [PREVIOUS.evaluation_date - timedelta(days=1)]
    # A customer who joined after the old week closed is not in the old week's population.
    joined = wh(
        bank, f"SELECT party_id FROM {SOURCE_SCHEMA}.customers WHERE valid_from >= DATE '{PREVIOUS.evaluation_date}'"
    )
    old_week = wh(bank, f"SELECT party_id FROM nbp_work.customers WHERE week_start = DATE '{PREVIOUS.key}'")
    assert len(joined) > 0
    newcomers = set(joined["party_id"]) - set(
        wh(
            bank, f"SELECT party_id FROM {SOURCE_SCHEMA}.customers WHERE valid_from < DATE '{PREVIOUS.evaluation_date}'"
        )["party_id"]
    )
    assert newcomers and not (newcomers & set(old_week["party_id"]))


def test_bad_input_fails_clearly_and_publishes_nothing(bank, tmp_path):
    assert run_week(bank, WEEK).success
    url = bank.resources["postgres"].conninfo()
    before_current = pg.read_current(url)
    before_history = history(bank, WEEK)

    # Corrupt MOD-040's latest snapshot: a churn probability of 1.7 for one party.
    path = bank.resources["warehouse"].database
    with duckdb.connect(path) as con:
        victim = con.execute(
            f"SELECT party_id, as_of_date FROM {SOURCE_SCHEMA}.churn_health ORDER BY as_of_date DESC, party_id LIMIT 1"
        ).fetchone()
        con.execute(
            f"UPDATE {SOURCE_SCHEMA}.churn_health SET churn_probability = 1.7 WHERE party_id = ? AND as_of_date = ?",
            list(victim),
        )

    result = run_week(bank, WEEK)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "signals"
    message = failure.event_specific_data.error.message
    assert "nbp_source.churn_health" in message and "churn_probability" in message and victim[0] in message

    # Nothing downstream ran; the last good outputs are untouched.
    assert not result.asset_materializations_for_node("nbp_current")
    pd.testing.assert_frame_equal(pg.read_current(url), before_current)
    pd.testing.assert_frame_equal(history(bank, WEEK), before_history)


def test_missing_optional_rote_drops_the_signal_and_says_so(bank):
    with duckdb.connect(bank.resources["warehouse"].database) as con:
        con.execute(f"DROP TABLE {SOURCE_SCHEMA}.customer_rote")
    result = run_week(bank, WEEK)
    assert result.success
    meta = metadata(result, "signals")
    assert meta["dropped_signals"] == "rote_uplift"
    assert "absent" in meta["customer_rote_input"]
    assert (wh(bank, "SELECT max(rote_uplift) AS m FROM nbp_work.signals")["m"].item()) == 0.0


def test_missing_required_table_names_it(bank):
    with duckdb.connect(bank.resources["warehouse"].database) as con:
        con.execute(f"DROP TABLE {SOURCE_SCHEMA}.behaviour")
    result = run_week(bank, WEEK)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "nbp_source.behaviour" in failure.event_specific_data.error.message


def test_a_week_run_in_party_shards_gives_the_same_rows(bank, monkeypatch):
    """A bank larger than one shard (NBP_DUCKDB_PARTIES_PER_SHARD) is computed one range of
    customers at a time: the signals, the scores and the top 3 must be exactly those of one pass."""
    signals_sql = f"SELECT * FROM nbp_work.signals WHERE week_start = TIMESTAMP '{WEEK.start:%Y-%m-%d} 00:00:00' ORDER BY party_id, product_id"
    scores_sql = signals_sql.replace("nbp_work.signals", "nbp_work.scores")
    one_pass = run_week(bank, WEEK)
    assert one_pass.success
    assert metadata(one_pass, "signals")["shards"] == metadata(one_pass, "scores")["shards"] == 1
    expected_signals, expected_scores, expected_top = wh(bank, signals_sql), wh(bank, scores_sql), history(bank, WEEK)

    monkeypatch.setenv("NBP_DUCKDB_PARTIES_PER_SHARD", "400")
    sharded = run_week(bank, WEEK)
    assert sharded.success
    active = metadata(sharded, "customers")["active_customers"]
    shards = [metadata(sharded, asset)["shards"] for asset in ("signals", "scores", "nbp_ranked")]
    assert shards == [-(-active // 400)] * 3 and shards[0] > 2
    pd.testing.assert_frame_equal(wh(bank, signals_sql), expected_signals, check_exact=True)
    pd.testing.assert_frame_equal(wh(bank, scores_sql), expected_scores, check_exact=True)
    pd.testing.assert_frame_equal(history(bank, WEEK), expected_top, check_exact=True)
    # stored in key order, shard after shard: the publish streams it to PostgreSQL presorted
    stored = wh(
        bank,
        "SELECT party_id, rank FROM product_intelligence.next_best_product "
        f"WHERE evaluated_at = TIMESTAMP '{WEEK.evaluated_at:%Y-%m-%d %H:%M:%S}'",
    )
    assert len(stored) > 1000
    pd.testing.assert_frame_equal(stored, stored.sort_values(["party_id", "rank"], ignore_index=True))
