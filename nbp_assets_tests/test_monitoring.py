"""Outcome monitoring (offer_outcomes) and week-over-week drift (model_drift) on hand-made data."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from nbp_assets.core.partitions import Week
from nbp_assets.core.settings import ConfigurationError, drift_psi_warn, outcome_gap_warn_pp
from nbp_assets.core.warehouse import HISTORY_TABLE, SOURCE_SCHEMA, DuckDBWarehouse
from nbp_assets.fairness.maths import difference_interval
from nbp_assets.monitoring import model as monitoring
from nbp_assets.monitoring.assets import (
    DRIFTED_METRICS,
    NO_ELIGIBLE_DRIFT,
    OUTCOME_GAP,
    SCORE_DRIFT,
    SCORE_PSI_DRIFT,
    SIGNAL_DRIFT,
    SIGNAL_PSI_DRIFT,
    approval_baseline_week,
    build_monitoring_assets,
)
from nbp_assets.weekly.vocabulary import ALL_SIGNALS

WEEK = Week.from_key("2026-11-09")
BEFORE = Week.from_key("2026-11-02")
MON = pd.Timestamp(WEEK.start)


@pytest.fixture
def warehouse(tmp_path):
    return DuckDBWarehouse(database=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"))


def _customers(week: Week, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "week_start": pd.Timestamp(week.start),
            "party_id": [f"P{i:03d}" for i in range(n)],
            "jurisdiction": ["GB" if i % 2 else "IE" for i in range(n)],
            "segment": "MASS",
            "age_band": "25-34",
            "gender": None,
            "status": "ACTIVE",
            "income": pd.array([50_000] * n, dtype="Int64"),
            "fico": pd.array([700] * n, dtype="Int64"),
        }
    )


def _materialize(warehouse, name, week: Week = WEEK, instance=None):
    asset = next(a for a in build_monitoring_assets() if a.key.path[-1] == name)
    return dg.materialize(
        [asset], partition_key=week.key, resources={"warehouse": warehouse}, raise_on_error=False, instance=instance
    )


def test_outcome_rates_by_rank_signal_and_group_show_who_accepted_less(warehouse):
    customers = _customers(WEEK, 80)
    warehouse.replace_table("nbp_work.customers", customers)
    # the top 3 current during the week: published at its Monday (the previous week's ranking)
    ranked = pd.DataFrame(
        {
            "party_id": customers["party_id"],
            "jurisdiction": customers["jurisdiction"],
            "rank": 1,
            "product_id": "SAV",
            "score": 0.5,
            "primary_signal": "idle_cash",
            "model_version": "m1",
            "evaluated_at": MON,
        }
    )
    warehouse.replace_table(HISTORY_TABLE, ranked)
    # IE (even parties) accept 30 of 40 offers, GB 10 of 40; one extra offer is outside the
    # top 3, one is answered only after the evaluation date (pending then), one before the week
    day = pd.Timedelta(days=1)
    parties = customers["party_id"].tolist()
    outcome = ["ACCEPTED" if (i % 2 == 0 and i < 60) or (i % 2 == 1 and i < 20) else "REJECTED" for i in range(80)]
    offers = pd.DataFrame(
        {
            "offer_id": [f"O{i}" for i in range(80)],
            "party_id": parties,
            "product_id": "SAV",
            "offered_at": MON + day,
            "outcome": outcome,
            "outcome_at": MON + 2 * day,
        }
    )
    extra = pd.DataFrame(
        {
            "offer_id": ["X1", "X2", "X3"],
            "party_id": ["P000", "P001", "P002"],
            "product_id": ["CARD", "SAV", "SAV"],
            "offered_at": [MON + day, MON + day, MON - day],
            "outcome": ["ACCEPTED", "ACCEPTED", "ACCEPTED"],
            "outcome_at": [MON + 2 * day, MON + 8 * day, MON],
        }
    )
    warehouse.replace_table(f"{SOURCE_SCHEMA}.offer_history", pd.concat([offers, extra], ignore_index=True))
    assert _materialize(warehouse, "offer_outcomes").success
    rates = warehouse.query("SELECT * FROM nbp_work.offer_outcomes").set_index(["by", "group"])
    assert rates.loc[("jurisdiction", "IE"), ["offered", "accepted"]].tolist() == [41, 31]  # X1 made by P000 (IE)
    assert rates.loc[("jurisdiction", "GB"), ["offered", "accepted", "rejected"]].tolist() == [41, 10, 30]  # X2 pending
    assert rates.loc[("rank", "1"), "offered"] == 81 and rates.loc[("rank", monitoring.NOT_RECOMMENDED), "offered"] == 1
    assert rates.loc[("primary_signal", "idle_cash"), "accepted"] == 40
    assert rates.loc[("model_version", "m1"), "acceptance_rate"] == pytest.approx(40 / 81)
    gb = rates.loc[("jurisdiction", "GB")]
    assert gb["acceptance_ci_low"] < 10 / 41 < gb["acceptance_ci_high"]
    gaps = monitoring.acceptance_gaps(rates.reset_index(), ["jurisdiction"], 30)
    assert gaps.iloc[0][["highest", "lowest"]].tolist() == ["IE", "GB"]
    assert gaps.iloc[0]["gap_pp"] == pytest.approx((31 / 41 - 10 / 41) * 100, abs=1e-4)


def _model_week(warehouse, week: Week, n: int, idle, score: float, eligible: int, model_version: str = "m1"):
    """A week of n customers, `eligible` of them with one candidate pair; idle: idle_cash of
    every pair (a number) or of each pair (a list), every other signal 0.1."""
    customers = _customers(week, n)
    pairs = pd.DataFrame(
        {"week_start": pd.Timestamp(week.start), "party_id": customers["party_id"][:eligible], "product_id": "SAV"}
    )
    signals = pairs.copy()
    for s in ALL_SIGNALS:
        signals[s] = idle if s == "idle_cash" else 0.1
    scores = pairs.assign(score=score, model_version=model_version)
    for name, df in (("customers", customers), ("eligibility", pairs), ("signals", signals), ("scores", scores)):
        warehouse.append_table(f"nbp_work.{name}", df) if warehouse.table_exists(
            f"nbp_work.{name}"
        ) else warehouse.replace_table(f"nbp_work.{name}", df)


def _checks(result):
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations() if e.check_name != "contract"}


def test_a_steady_week_passes_and_a_drifting_week_warns(warehouse):
    _model_week(warehouse, BEFORE, 100, idle=0.20, score=0.40, eligible=90)
    _model_week(warehouse, WEEK, 100, idle=0.24, score=0.44, eligible=89)  # within every threshold
    result = _materialize(warehouse, "model_drift")
    assert result.success and all(_checks(result).values())
    assert set(_checks(result)) == {SIGNAL_DRIFT, SCORE_DRIFT, NO_ELIGIBLE_DRIFT, SIGNAL_PSI_DRIFT, SCORE_PSI_DRIFT}


def test_each_drift_is_found_by_its_own_check(warehouse):
    _model_week(warehouse, BEFORE, 100, idle=0.20, score=0.40, eligible=90)
    _model_week(warehouse, WEEK, 100, idle=0.26, score=0.46, eligible=87)  # 0.06, 0.06, 3 points
    result = _materialize(warehouse, "model_drift")
    assert result.success  # a warning, not a failure
    # every value moved within its PSI bin (0.2 -> 0.26, 0.4 -> 0.46): the distributions' bins did not change
    assert _checks(result) == {
        SIGNAL_DRIFT: False,
        SCORE_DRIFT: False,
        NO_ELIGIBLE_DRIFT: False,
        SIGNAL_PSI_DRIFT: True,
        SCORE_PSI_DRIFT: True,
    }
    drift = warehouse.query("SELECT * FROM nbp_work.model_drift").set_index("metric")
    assert drift.loc["mean_idle_cash", "drifted"] and not drift.loc["mean_churn_risk", "drifted"]
    assert drift.loc["no_eligible_product_share", "change"] == pytest.approx(0.03)


def test_the_first_week_has_nothing_to_drift_from(warehouse):
    _model_week(warehouse, WEEK, 100, idle=0.26, score=0.46, eligible=87)
    result = _materialize(warehouse, "model_drift")
    assert result.success and all(_checks(result).values())


def test_a_week_without_offers_writes_an_empty_slice(warehouse):
    warehouse.replace_table("nbp_work.customers", _customers(WEEK, 10))
    offers = pd.DataFrame(
        {
            "offer_id": ["O1"],
            "party_id": ["P001"],
            "product_id": ["SAV"],
            "offered_at": [MON - pd.Timedelta(days=3)],
            "outcome": ["ACCEPTED"],
            "outcome_at": [MON],
        }
    )
    warehouse.replace_table(f"{SOURCE_SCHEMA}.offer_history", offers)  # made the week before
    result = _materialize(warehouse, "offer_outcomes")
    assert result.success
    assert result.asset_materializations_for_node("offer_outcomes")[0].metadata["offers"].value == 0


@pytest.mark.parametrize("n, distinct", [(1, 1), (2, 2), (3, 1), (10, 4), (1001, 37), (20000, 20000)])
def test_score_quantiles_from_the_histogram_are_the_engines_percentile_cont(n, distinct):
    """The drift quantiles come from the score's histogram (bounded memory at any bank size):
    they must be, bit for bit, what percentile_cont gives on the scores themselves."""
    import duckdb
    import numpy as np

    rng = np.random.default_rng(n)
    values = np.round(rng.random(distinct), 6)
    scores = pd.DataFrame({"score": rng.choice(values, size=n)})
    con = duckdb.connect()
    con.register("scores_in", scores)
    got = con.sql(monitoring.score_quantiles_sql("scores_in")).fetchall()[0]
    exact = ", ".join(f"percentile_cont({q}) WITHIN GROUP (ORDER BY score)" for q in monitoring.SCORE_QUANTILES)
    expected = con.sql(f"SELECT {exact} FROM scores_in").fetchall()[0]
    assert got == expected
    assert np.allclose(got, np.quantile(scores["score"], monitoring.SCORE_QUANTILES), rtol=0, atol=1e-12)


# ------------------------------------------------------------- distributions (issue 22.6)


def _spread(n: int, half_width: float, moved: int = 0, moved_half_width: float = 0.0) -> list[float]:
    """n idle_cash values with mean exactly 0.5: alternately 0.5 - w and 0.5 + w, the first
    `moved` of them at the half width `moved_half_width` instead."""
    return [0.5 + (-1) ** i * (moved_half_width if i < moved else half_width) for i in range(n)]


def test_a_signal_whose_spread_changes_with_its_mean_unchanged_is_a_distribution_drift(warehouse):
    """0.5 +- 0.05 one week, 0.5 +- 0.4 the next: the mean and the score do not move, so the
    mean and quantile checks pass (what model_drift judged before); the PSI check warns."""
    _model_week(warehouse, BEFORE, 100, idle=_spread(100, 0.05), score=0.40, eligible=100)
    _model_week(warehouse, WEEK, 100, idle=_spread(100, 0.4), score=0.40, eligible=100)
    result = _materialize(warehouse, "model_drift")
    assert result.success  # a warning, not a failure
    assert _checks(result) == {
        SIGNAL_DRIFT: True,
        SCORE_DRIFT: True,
        NO_ELIGIBLE_DRIFT: True,
        SIGNAL_PSI_DRIFT: False,
        SCORE_PSI_DRIFT: True,
    }
    drift = warehouse.query("SELECT * FROM nbp_work.model_drift").set_index("metric")
    assert drift.loc["mean_idle_cash", "change"] == pytest.approx(0.0, abs=1e-12)
    # all of last week's values were in bins 4 and 5, this week's in 1 and 9: each of the four
    # bins contributes 0.5 x ln(0.5 / 1e-4) (an empty bin's share is epsilon)
    psi = drift.loc["psi_idle_cash_vs_previous"]
    assert psi["kind"] == "signal_psi" and psi["drifted"] and psi["threshold"] == 0.2
    assert psi["value"] == pytest.approx(4 * (0.5 - 1e-4) * np.log(0.5 / 1e-4), rel=1e-9)
    assert not drift.loc["psi_churn_risk_vs_previous", "drifted"] and drift.loc["psi_score_vs_previous", "value"] == 0
    # the approval week (first week of m1) is the previous week here: the same comparison
    assert drift.loc["psi_idle_cash_vs_approval", "value"] == pytest.approx(psi["value"])
    failed = next(e for e in result.get_asset_check_evaluations() if e.check_name == SIGNAL_PSI_DRIFT)
    assert failed.severity == dg.AssetCheckSeverity.WARN
    assert set(failed.metadata["drifted_metrics"].value) == {"psi_idle_cash_vs_previous", "psi_idle_cash_vs_approval"}
    assert (
        failed.metadata["drifted_metrics"].value["psi_idle_cash_vs_previous"]["baseline"]
        == f"week {BEFORE.key} (previous)"
    )
    meta = result.asset_materializations_for_node("model_drift")[0].metadata
    assert meta["approval_week"].value == BEFORE.key and meta["model_version"].value == "m1"


def test_a_slow_drift_shows_against_the_approval_week_not_the_previous_one(warehouse):
    """10 % of the values move out each week: small against the previous week (PSI 0.08),
    large against the week the model_version was approved (its first week)."""
    approved = Week.from_key("2026-10-26")
    _model_week(warehouse, approved, 100, idle=_spread(100, 0.05), score=0.4, eligible=100)
    _model_week(
        warehouse, BEFORE, 100, idle=_spread(100, 0.05, moved=10, moved_half_width=0.35), score=0.4, eligible=100
    )
    _model_week(warehouse, WEEK, 100, idle=_spread(100, 0.05, moved=20, moved_half_width=0.35), score=0.4, eligible=100)
    assert approval_baseline_week(warehouse, WEEK) == ("m1", approved)
    result = _materialize(warehouse, "model_drift")
    assert _checks(result)[SIGNAL_DRIFT] and not _checks(result)[SIGNAL_PSI_DRIFT]
    drift = warehouse.query("SELECT * FROM nbp_work.model_drift").set_index("metric")
    assert (
        drift.loc["psi_idle_cash_vs_previous", "value"] < 0.1 and not drift.loc["psi_idle_cash_vs_previous", "drifted"]
    )
    assert drift.loc["psi_idle_cash_vs_approval", "drifted"]
    assert result.asset_materializations_for_node("model_drift")[0].metadata["approval_week"].value == approved.key


def test_a_new_model_version_is_its_own_approval_week(warehouse):
    _model_week(warehouse, BEFORE, 100, idle=_spread(100, 0.05), score=0.4, eligible=100)
    _model_week(warehouse, WEEK, 100, idle=_spread(100, 0.4), score=0.4, eligible=100, model_version="m2")
    assert approval_baseline_week(warehouse, WEEK) == ("m2", WEEK)
    result = _materialize(warehouse, "model_drift")
    drift = warehouse.query("SELECT metric FROM nbp_work.model_drift")["metric"].tolist()
    assert "psi_idle_cash_vs_previous" in drift and not any(m.endswith("_vs_approval") for m in drift)
    assert not _checks(result)[SIGNAL_PSI_DRIFT]  # still judged against the previous week


def test_the_psi_threshold_is_configuration(warehouse, monkeypatch):
    """The previous week's PSI of the slow drift (0.08) passes the default 0.2 and fails 0.05."""
    _model_week(
        warehouse, BEFORE, 100, idle=_spread(100, 0.05, moved=10, moved_half_width=0.35), score=0.4, eligible=100
    )
    _model_week(warehouse, WEEK, 100, idle=_spread(100, 0.05, moved=20, moved_half_width=0.35), score=0.4, eligible=100)
    monkeypatch.setenv("NBP_DRIFT_PSI_WARN", "0.05")
    result = _materialize(warehouse, "model_drift")
    drift = warehouse.query("SELECT * FROM nbp_work.model_drift").set_index("metric")
    assert (drift.loc[drift["kind"].str.endswith("_psi"), "threshold"] == 0.05).all()
    assert 0.05 < drift.loc["psi_idle_cash_vs_previous", "value"] < 0.2
    assert drift.loc["psi_idle_cash_vs_previous", "drifted"] and not _checks(result)[SIGNAL_PSI_DRIFT]


@pytest.mark.parametrize("raw", ["abc", "0", "-0.1", "nan", "inf", "11", "0,2"])
def test_a_bad_psi_threshold_is_one_line_naming_it_and_fails_the_load(monkeypatch, raw):
    monkeypatch.setenv("NBP_DRIFT_PSI_WARN", raw)
    with pytest.raises(ConfigurationError) as refused:
        drift_psi_warn()
    message = str(refused.value)
    assert "\n" not in message and message.startswith("NBP_DRIFT_PSI_WARN ") and repr(raw) in message
    with pytest.raises(ConfigurationError, match="NBP_DRIFT_PSI_WARN"):
        build_monitoring_assets()  # the code location does not load


@pytest.mark.parametrize("raw, value", [("", 0.2), ("0.1", 0.1), (" 0.25 ", 0.25), ("10", 10.0)])
def test_the_psi_threshold_defaults_to_0_2(monkeypatch, raw, value):
    monkeypatch.setenv("NBP_DRIFT_PSI_WARN", raw)
    assert drift_psi_warn() == value


@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_the_distributions_and_the_approval_week_are_the_same_through_snowflake(warehouse, monkeypatch):
    """psi.sql and approval_week.sql through the Snowflake connector (fakesnow) give DuckDB's rows."""
    import fakesnow

    from nbp_assets.resources import open_warehouse
    from nbp_assets_tests.test_weekly_sql import SNOWFLAKE_ENV

    for var, value in SNOWFLAKE_ENV.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("NBP_POSTGRES_URL", "postgresql://unused@localhost:1/unused")  # required, never opened here
    for var in ("SNOWFLAKE_PRIVATE_KEY", "SNOWFLAKE_PRIVATE_KEY_PATH", "NBP_WEIGHTS_TABLE"):
        monkeypatch.delenv(var, raising=False)
    _model_week(warehouse, BEFORE, 50, idle=_spread(50, 0.05), score=0.4, eligible=50)
    _model_week(warehouse, WEEK, 50, idle=_spread(40, 0.4, moved=10, moved_half_width=0.2), score=0.7, eligible=40)
    tables = {n: warehouse.query(f"SELECT * FROM nbp_work.{n}") for n in ("signals", "scores")}

    def answers(wh):
        from nbp_assets.contract.tables import SCORES, SIGNALS
        from nbp_assets.weekly.io import week_slice

        psi = wh.query(
            monitoring.psi_sql(
                week_slice(SIGNALS, WEEK),
                week_slice(SCORES, WEEK),
                {monitoring.PREVIOUS: (week_slice(SIGNALS, BEFORE), week_slice(SCORES, BEFORE))},
            )
        )
        psi.columns = [c.lower() for c in psi.columns]
        return psi.sort_values(["baseline", "metric"]).reset_index(drop=True), approval_baseline_week(wh, WEEK)

    local_psi, local_approval = answers(warehouse)
    with fakesnow.patch():
        snowflake = open_warehouse("production")
        with snowflake.session():
            for name, df in tables.items():
                snowflake.replace_table(f"nbp_work.{name}", df)
            snow_psi, snow_approval = answers(snowflake)
    assert len(local_psi) == len(ALL_SIGNALS) + 1 and local_psi.set_index("metric").loc["score", "psi"] > 1
    assert snow_approval == local_approval == ("m1", BEFORE)
    pd.testing.assert_frame_equal(snow_psi, local_psi, check_dtype=False, rtol=1e-12)


@pytest.mark.parametrize("command", [["materialize"], ["backfill", "2026-11-02", "2026-11-09"], ["demo"], ["check"]])
def test_the_commands_refuse_a_bad_psi_threshold_in_one_line_exit_2_writing_nothing(
    command, monkeypatch, tmp_path, capsys
):
    from nbp_assets.cli import main

    home = tmp_path / "home"
    monkeypatch.setenv("NBP_HOME", str(home))
    monkeypatch.delenv("NBP_DEPLOYMENT", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("NBP_DRIFT_PSI_WARN", "abc")
    with pytest.raises(SystemExit) as refused:
        main(command)
    assert refused.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "NBP_DRIFT_PSI_WARN must be a number > 0 and <= 10" in err and "'abc'" in err
    assert not home.exists()  # nothing written: no warehouse, no PostgreSQL, no Dagster home


# ------------------------------------------------------------- who is told (issue 22.6)


@pytest.fixture
def compliance_url(postgres_url):
    """The test PostgreSQL without the compliance outbox: each test starts with no alert."""
    import psycopg

    from nbp_assets.alerts import outbox

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {outbox.SCHEMA} CASCADE")
    return postgres_url


def _ops_tick(instance, url: str, maildir, cursor: str | None = None):
    """One tick of nbp_ops_alert_sensor, as the daemon runs it: (its message, its new cursor)."""
    from nbp_assets.alerts.resource import FairnessAlertsResource
    from nbp_assets.core.postgres_resource import PostgresResource
    from nbp_assets.ops.sensors import nbp_ops_alert_sensor

    resources = {
        "postgres": PostgresResource(url=url, data_dir=str(maildir.parent / "unused")),
        "fairness_alerts": FairnessAlertsResource(maildir=str(maildir)),
    }
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    return nbp_ops_alert_sensor(context).skip_message, context.cursor


def _ops_alerts(url: str, alert_type: str) -> list[dict]:
    from nbp_assets.alerts import outbox

    with outbox.connect(url) as conn:
        return conn.execute(
            f"SELECT * FROM {outbox.OPS_ALERTS} WHERE alert_type = %s ORDER BY dedupe_key", (alert_type,)
        ).fetchall()


@pytest.mark.integration
def test_a_distribution_drift_reaches_operations_once_per_week_and_metric(warehouse, compliance_url, tmp_path):
    """The spread of idle_cash widens with its mean unchanged: nbp_ops_alert_sensor records one
    operations alert per drifted metric of the week, delivered like a failed run's (here the
    local Maildir channel); a re-run of the week, and later ticks, record nothing more."""
    import mailbox

    instance, maildir = dg.DagsterInstance.ephemeral(), tmp_path / "maildir"
    _model_week(warehouse, BEFORE, 100, idle=_spread(100, 0.05), score=0.4, eligible=100)
    _model_week(warehouse, WEEK, 100, idle=_spread(100, 0.4), score=0.4, eligible=100)
    assert _materialize(warehouse, "model_drift", instance=instance).success
    text, cursor = _ops_tick(instance, compliance_url, maildir)
    sent = _ops_alerts(compliance_url, "nbp.model_drift_warning")
    assert [a["dedupe_key"] for a in sent] == [
        f"nbp.model_drift:{WEEK.key}:psi_idle_cash_vs_approval",
        f"nbp.model_drift:{WEEK.key}:psi_idle_cash_vs_previous",
    ]
    previous = sent[1]
    assert previous["week_start"] == WEEK.start and previous["delivered_at"] is not None
    assert previous["summary"] == (
        f"week {WEEK.key}: model_drift warning signal_distributions_stable: psi_idle_cash_vs_previous "
        "is 17.03, over its threshold 0.2"
    )
    assert f"recorded #{previous['alert_id']} nbp.model_drift_warning" in text
    facts = dict(map(tuple, previous["payload"]["facts"]))
    assert facts["Baseline"] == f"week {BEFORE.key} (previous)" and facts["Threshold"] == "0.2"
    mails = [m for m in mailbox.Maildir(maildir, create=False) if m["X-NBP-Alert-Type"] == "nbp.model_drift_warning"]
    assert len(mails) == 2  # the same channel and message shape as a failed run's alert

    # The week is re-run (the same drift fails the check again): no second alert, no second mail.
    assert _materialize(warehouse, "model_drift", instance=instance).success
    text, cursor = _ops_tick(instance, compliance_url, maildir, cursor)
    _ops_tick(instance, compliance_url, maildir, None)  # even a sensor that lost its cursor
    again = _ops_alerts(compliance_url, "nbp.model_drift_warning")
    assert [(a["alert_id"], a["dedupe_key"], a["run_id"]) for a in again] == [
        (a["alert_id"], a["dedupe_key"], a["run_id"]) for a in sent
    ]  # the first run's alerts, nothing added
    assert "nbp.model_drift_warning" not in text
    assert (
        len([m for m in mailbox.Maildir(maildir, create=False) if m["X-NBP-Alert-Type"] == "nbp.model_drift_warning"])
        == 2
    )


@pytest.mark.integration
def test_a_steady_week_tells_no_one(warehouse, compliance_url, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    _model_week(warehouse, BEFORE, 100, idle=0.20, score=0.40, eligible=90)
    _model_week(warehouse, WEEK, 100, idle=0.24, score=0.44, eligible=89)
    assert _materialize(warehouse, "model_drift", instance=instance).success
    _ops_tick(instance, compliance_url, tmp_path / "maildir")
    assert _ops_alerts(compliance_url, "nbp.model_drift_warning") == []


@pytest.mark.integration
def test_a_failed_warning_check_of_offer_outcomes_is_one_operations_alert(compliance_url, tmp_path):
    """An outcome warning (a check that names no metric) is one alert under the check's name."""
    from nbp_assets.core.partitions import weekly_partitions

    @dg.asset(
        name="offer_outcomes",
        partitions_def=weekly_partitions,
        check_specs=[dg.AssetCheckSpec("acceptance_gap_within_threshold", asset="offer_outcomes")],
    )
    def offer_outcomes():
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(
            check_name="acceptance_gap_within_threshold",
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="treated accepted 9 pp less than held out",
        )

    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):  # two runs of the week
        assert dg.materialize([offer_outcomes], partition_key=WEEK.key, instance=instance).success
        _ops_tick(instance, compliance_url, tmp_path / "maildir")
    sent = _ops_alerts(compliance_url, "nbp.offer_outcomes_warning")
    assert [a["dedupe_key"] for a in sent] == [f"nbp.offer_outcomes:{WEEK.key}:acceptance_gap_within_threshold"]
    assert sent[0]["summary"] == f"week {WEEK.key}: offer_outcomes warning acceptance_gap_within_threshold"
    assert "treated accepted 9 pp less than held out" in dict(map(tuple, sent[0]["payload"]["facts"]))["Check result"]


# ------------------------------------------------------ the outcome gap's warning (issue 22.6)


def _outcome_week(warehouse, ie_accepted: int, gb_accepted: int, n: int = 80):
    """A week of n offers of SAV, one per customer, all following the published top 3:
    IE (even parties) accepts ie_accepted of its n/2, GB (odd parties) gb_accepted."""
    customers = _customers(WEEK, n)
    warehouse.replace_table("nbp_work.customers", customers)
    ranked = customers[["party_id", "jurisdiction"]].assign(
        rank=1, product_id="SAV", score=0.5, primary_signal="idle_cash", model_version="m1", evaluated_at=MON
    )
    warehouse.replace_table(HISTORY_TABLE, ranked)
    day = pd.Timedelta(days=1)
    outcome = ["ACCEPTED" if i // 2 < (gb_accepted if i % 2 else ie_accepted) else "REJECTED" for i in range(n)]
    offers = pd.DataFrame(
        {
            "offer_id": [f"O{i}" for i in range(n)],
            "party_id": customers["party_id"],
            "product_id": "SAV",
            "offered_at": MON + day,
            "outcome": outcome,
            "outcome_at": MON + 2 * day,
        }
    )
    warehouse.replace_table(f"{SOURCE_SCHEMA}.offer_history", offers)


def _gap_check(result) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == OUTCOME_GAP)


def test_a_group_that_accepts_far_less_fails_the_acceptance_gap_warning(warehouse):
    """IE accepts 30 of 40 offers, GB 10 of 40: a 50 pp gap, its interval far from 0."""
    _outcome_week(warehouse, ie_accepted=30, gb_accepted=10)
    result = _materialize(warehouse, "offer_outcomes")
    assert result.success  # a warning: the week is written
    check = _gap_check(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    named = check.metadata[DRIFTED_METRICS].value
    assert list(named) == ["acceptance_gap_jurisdiction"]  # age_band and segment have one group each
    gap = named["acceptance_gap_jurisdiction"]
    assert gap["dimension"] == "jurisdiction" and gap["groups"] == "IE (highest) vs GB (lowest)"
    assert gap["value"] == pytest.approx(50.0) and gap["threshold"] == 10.0
    assert gap["rates"] == "0.7500 of 40 offers vs 0.2500 of 40"
    assert "jurisdiction: IE (highest) vs GB (lowest) accepted 50 pp apart" in check.description
    assert warehouse.query("SELECT count(*) AS n FROM nbp_work.offer_outcomes")["n"][0] > 0


@pytest.mark.parametrize(
    "ie, gb, why",
    [(20, 18, "a 5 pp gap is under 10 pp"), (20, 14, "15 pp over 40 offers each: its interval includes 0")],
)
def test_a_small_or_noisy_acceptance_gap_passes(warehouse, ie, gb, why):
    _outcome_week(warehouse, ie_accepted=ie, gb_accepted=gb)
    check = _gap_check(_materialize(warehouse, "offer_outcomes"))
    assert check.passed, why
    assert check.metadata[DRIFTED_METRICS].value == {}


def test_the_noise_rule_is_newcombes_interval_of_the_difference():
    rates = monitoring.outcome_rates(
        pd.DataFrame(
            {"by": "jurisdiction", "grp": ["IE", "GB"], "offered": [40, 40], "accepted": [20, 14], "rejected": [20, 26]}
        )
    )
    gaps = monitoring.acceptance_gaps(rates, ["jurisdiction"], 30)
    low, high = difference_interval(20, 40, 14, 40)
    assert gaps.iloc[0][["gap_ci_low_pp", "gap_ci_high_pp"]].tolist() == pytest.approx(
        [low * 100, high * 100], abs=1e-3
    )
    assert low < 0 < 0.15 < high and monitoring.gap_warnings(gaps, 10.0) == {}
    assert list(monitoring.gap_warnings(gaps.assign(gap_ci_low_pp=1.0), 10.0)) == ["acceptance_gap_jurisdiction"]


def test_the_acceptance_gap_threshold_is_configuration(warehouse, monkeypatch):
    _outcome_week(warehouse, ie_accepted=30, gb_accepted=10)
    monkeypatch.setenv("NBP_OUTCOME_GAP_WARN_PP", "60")
    assert _gap_check(_materialize(warehouse, "offer_outcomes")).passed  # 50 pp is under 60
    monkeypatch.setenv("NBP_OUTCOME_GAP_WARN_PP", "40")
    assert not _gap_check(_materialize(warehouse, "offer_outcomes")).passed


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "nan", "inf", "101", "10,5"])
def test_a_bad_outcome_gap_threshold_is_one_line_naming_it_and_fails_the_load(monkeypatch, raw):
    monkeypatch.setenv("NBP_OUTCOME_GAP_WARN_PP", raw)
    with pytest.raises(ConfigurationError) as refused:
        outcome_gap_warn_pp()
    message = str(refused.value)
    assert "\n" not in message and message.startswith("NBP_OUTCOME_GAP_WARN_PP ") and repr(raw) in message
    with pytest.raises(ConfigurationError, match="NBP_OUTCOME_GAP_WARN_PP"):
        build_monitoring_assets()


@pytest.mark.parametrize("raw, value", [("", 10.0), (" 5 ", 5.0), ("100", 100.0)])
def test_the_outcome_gap_threshold_defaults_to_10_pp(monkeypatch, raw, value):
    monkeypatch.setenv("NBP_OUTCOME_GAP_WARN_PP", raw)
    assert outcome_gap_warn_pp() == value


@pytest.mark.parametrize("command", [["materialize"], ["backfill", "2026-11-02", "2026-11-09"], ["demo"], ["check"]])
def test_the_commands_refuse_a_bad_outcome_gap_threshold_in_one_line_exit_2_writing_nothing(
    command, monkeypatch, tmp_path, capsys
):
    from nbp_assets.cli import main

    home = tmp_path / "home"
    monkeypatch.setenv("NBP_HOME", str(home))
    monkeypatch.delenv("NBP_DEPLOYMENT", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("NBP_OUTCOME_GAP_WARN_PP", "abc")
    with pytest.raises(SystemExit) as refused:
        main(command)
    assert refused.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "NBP_OUTCOME_GAP_WARN_PP must be a number > 0 and <= 100" in err
    assert "'abc'" in err
    assert not home.exists()  # nothing written: no warehouse, no PostgreSQL, no Dagster home


@pytest.mark.integration
def test_an_acceptance_gap_reaches_operations_once_per_week_and_metric(warehouse, compliance_url, tmp_path):
    """The real offer_outcomes asset (no stand-in): GB accepts 25 % of its offers, IE 75 %.
    nbp_ops_alert_sensor records one operations alert for the week and the dimension,
    delivered like a failed run's; a re-run of the week records nothing more."""
    import mailbox

    instance, maildir = dg.DagsterInstance.ephemeral(), tmp_path / "maildir"
    _outcome_week(warehouse, ie_accepted=30, gb_accepted=10)
    assert _materialize(warehouse, "offer_outcomes", instance=instance).success
    text, cursor = _ops_tick(instance, compliance_url, maildir)
    sent = _ops_alerts(compliance_url, "nbp.offer_outcomes_warning")
    assert [a["dedupe_key"] for a in sent] == [f"nbp.offer_outcomes:{WEEK.key}:acceptance_gap_jurisdiction"]
    alert = sent[0]
    assert alert["week_start"] == WEEK.start and alert["delivered_at"] is not None
    assert alert["summary"] == (
        f"week {WEEK.key}: offer_outcomes warning {OUTCOME_GAP}: acceptance_gap_jurisdiction "
        "is 50, over its threshold 10"
    )
    facts = dict(map(tuple, alert["payload"]["facts"]))
    assert facts["Groups"] == "IE (highest) vs GB (lowest)" and facts["Dimension"] == "jurisdiction"
    assert f"recorded #{alert['alert_id']} nbp.offer_outcomes_warning" in text

    def mails():
        return [
            m for m in mailbox.Maildir(maildir, create=False) if m["X-NBP-Alert-Type"] == "nbp.offer_outcomes_warning"
        ]

    assert len(mails()) == 1
    assert _materialize(warehouse, "offer_outcomes", instance=instance).success  # the week re-run, same gap
    text, _ = _ops_tick(instance, compliance_url, maildir, cursor)
    _ops_tick(instance, compliance_url, maildir, None)  # even a sensor that lost its cursor
    again = _ops_alerts(compliance_url, "nbp.offer_outcomes_warning")
    assert [(a["alert_id"], a["dedupe_key"], a["run_id"]) for a in again] == [
        (alert["alert_id"], alert["dedupe_key"], alert["run_id"])
    ]
    assert "nbp.offer_outcomes_warning" not in text and len(mails()) == 1
