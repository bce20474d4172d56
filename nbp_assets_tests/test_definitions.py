"""Snapshot of the nbp_assets code location: assets, edges, checks, partitions, job, schedule.

Fast and server-free: the definitions are built in-process with NBP_HOME in a tmp dir (the
module builds its resources from the environment at import), so nothing is written to the
repository. A deliberate change to the graph should change the literals below with it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest

from nbp_assets.core import settings
from nbp_assets.core.partitions import Week, weekly_partitions
from nbp_assets.offers import assets as nbo
from nbp_assets.offers.model import OFFER_CODE_VERSION
from nbp_assets.resources import build_resources
from nbp_assets.weekly import checks
from nbp_assets.weekly.weights import DEFAULT_WEIGHTS_FILE, MODEL_CODE_VERSION, load_weights

LONDON = ZoneInfo("Europe/London")
GROUP = "next_best_product"
JOB = "nbp_weekly_job"
SCHEDULE = "nbp_weekly_schedule"

ASSETS = {
    "customers",
    "activity",
    "eligibility",
    "signals",
    "scores",
    "nbp_ranked",
    "nbp_current",
    "fairness_report",
    "offer_outcomes",
    "model_drift",
}
# The weights configuration: an observable source asset (data version = the weights'
# digest), unpartitioned, observed by every weekly run.
WEIGHTS_SOURCE = "ranking_weights"
# (upstream, downstream)
EDGES = {
    (WEIGHTS_SOURCE, "scores"),  # every asset whose rows carry model_version: stale when the weights change
    (WEIGHTS_SOURCE, "nbp_ranked"),
    (WEIGHTS_SOURCE, "nbp_current"),
    (WEIGHTS_SOURCE, "fairness_report"),
    ("customers", "eligibility"),
    ("eligibility", "signals"),
    ("customers", "signals"),
    ("signals", "scores"),
    ("scores", "nbp_ranked"),
    ("customers", "nbp_ranked"),
    ("eligibility", "nbp_ranked"),
    ("nbp_ranked", "nbp_current"),
    ("nbp_ranked", "fairness_report"),
    ("customers", "fairness_report"),
    ("nbp_ranked", "offer_outcomes"),
    ("customers", "offer_outcomes"),
    ("signals", "model_drift"),
    ("scores", "model_drift"),
    ("eligibility", "model_drift"),
    ("customers", "model_drift"),
}
# Assets whose output depends on the weights: their code_version is the model_version.
MODEL_VERSIONED = {"scores", "nbp_ranked", "nbp_current", "fairness_report"}
# asset -> {check name: blocking}
CHECKS = {
    "customers": {checks.CONTRACT: True},
    "activity": {checks.CONTRACT: True},
    "eligibility": {checks.CONTRACT: True},
    "signals": {checks.CONTRACT: True},
    "scores": {checks.CONTRACT: True},
    "nbp_ranked": {
        checks.CONTRACT: True,
        checks.ELIGIBILITY_GATE: True,
        checks.RANKS: True,
        checks.SCORES: True,
        checks.MODEL_VERSION: True,
        checks.NOT_EMPTY: True,
        checks.SUITABILITY: True,
    },
    "nbp_current": {checks.CONTRACT: True},
    # an acceptance gap between groups is a warning (and an operations alert), like drift
    "offer_outcomes": {checks.CONTRACT: True, "acceptance_gap_within_threshold": False},
    # drift is a warning: the week is already checked and published
    "model_drift": {
        checks.CONTRACT: True,
        "signal_means_stable": False,
        "score_quantiles_stable": False,
        "no_eligible_product_share_stable": False,
        "signal_distributions_stable": False,
        "score_distribution_stable": False,
    },
    "fairness_report": {checks.CONTRACT: True, checks.FAIRNESS_GAP: False},
}
CHECK_NAMES = {  # the constants are part of the contract with sensors and the UI
    "CONTRACT": "contract",
    "ELIGIBILITY_GATE": "eligibility_gate",
    "RANKS": "ranks_1_to_n",
    "SCORES": "scores_in_range",
    "MODEL_VERSION": "model_version_on_every_row",
    "NOT_EMPTY": "week_not_empty",
    "FAIRNESS_GAP": "fairness_gap_within_threshold",
}
# The next-best-offer recipe (issue 5): its own group, unpartitioned, driven by a sensor.
OFFER_GROUP = "next_best_offer"
OFFER_ASSETS = {"offers", "offer_rules", "next_best_offer", "next_best_offer_lookup"}
OFFER_EDGES = {
    ("offers", "offer_rules"),
    ("offer_rules", "next_best_offer"),
    ("next_best_offer", "next_best_offer_lookup"),
    ("offers", "next_best_offer_lookup"),
}
OFFER_CHECKS = {
    "offers": {checks.CONTRACT: True},
    "offer_rules": {checks.CONTRACT: True, "rules_history_unchanged": True, "rules_coverage": False},
    "next_best_offer": {checks.CONTRACT: True, "every_event_offered_once": True, "events_waiting_for_customer": False},
    "next_best_offer_lookup": {checks.CONTRACT: True, "every_offer_found": True},
}
OFFER_CODE_VERSIONS = {
    "offers": None,
    "offer_rules": OFFER_CODE_VERSION,
    "next_best_offer": OFFER_CODE_VERSION,
    "next_best_offer_lookup": OFFER_CODE_VERSION,
}
OFFER_JOBS = {
    "next_best_offer_job": {"next_best_offer", "next_best_offer_lookup"},
    "offer_tables_job": {"offers", "offer_rules"},
}
SCHEDULE_CRON = "0 6 * * 1"  # Monday 06:00 ...
SCHEDULE_TZ = "Europe/London"  # ... London wall time, GMT or BST

# Dagster's own build_schedule_from_partitioned_job calls a method it deprecated (1.13.27).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Function `JobDefinition.run_request_for_partition` is deprecated:DeprecationWarning"
)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def nbp_home(tmp_path_factory):
    """NBP_HOME in a tmp dir and no other NBP_* override, for the whole module."""
    home = tmp_path_factory.mktemp("nbp_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBP_HOME", str(home))
        for var in ("NBP_WEIGHTS_FILE", "NBP_DEPLOYMENT", "NBP_WAREHOUSE_PATH", "NBP_POSTGRES_URL"):
            mp.delenv(var, raising=False)
        yield home


@pytest.fixture(scope="module")
def definitions_module(nbp_home):
    # Imported only now: the import runs build_definitions() with the environment above.
    import nbp_assets.definitions as module

    return module


@pytest.fixture(scope="module")
def defs(definitions_module) -> dg.Definitions:
    return definitions_module.build_definitions()


@pytest.fixture(scope="module")
def graph(defs):
    return defs.resolve_asset_graph()


def key_names(keys) -> set[str]:
    return {k.to_user_string() for k in keys}


def london(ts: str) -> datetime:
    return datetime.fromisoformat(ts).replace(tzinfo=LONDON)


def modified_weights(path) -> str:
    """The default weights with one cooling_off weight changed, written to path."""
    df = pd.read_csv(DEFAULT_WEIGHTS_FILE)
    row = (df["product_class"] == "CARD") & (df["signal"] == "cooling_off")
    assert row.sum() == 1 and df.loc[row, "weight"].item() == pytest.approx(0.90)
    df.loc[row, "weight"] = 0.80
    df.to_csv(path, index=False)
    return str(path)


# ---------------------------------------------------------------------------- code location


def test_module_exposes_loadable_defs(definitions_module):
    assert isinstance(definitions_module.defs, dg.Definitions)
    dg.Definitions.validate_loadable(definitions_module.defs)


def test_nothing_written_outside_nbp_home(defs, nbp_home):
    resources = build_resources()
    assert set(resources) == {"warehouse", "postgres"}
    assert resources["warehouse"].database == str(nbp_home / "warehouse.duckdb")
    assert resources["postgres"].data_dir == str(nbp_home / "postgres")
    assert resources["postgres"].url is None


# ---------------------------------------------------------------------------- assets


def test_asset_keys(graph):
    assert key_names(graph.get_all_asset_keys()) == ASSETS | OFFER_ASSETS | {WEIGHTS_SOURCE}


def test_every_asset_is_described_and_grouped(defs):
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    assert set(specs) == ASSETS | OFFER_ASSETS | {WEIGHTS_SOURCE}
    assert {k: s.group_name for k, s in specs.items()} == (
        dict.fromkeys(ASSETS | {WEIGHTS_SOURCE}, GROUP) | dict.fromkeys(OFFER_ASSETS, OFFER_GROUP)
    )
    undescribed = sorted(k for k, s in specs.items() if not (s.description or "").strip())
    assert undescribed == []


def test_every_asset_uses_the_one_weekly_partitions_definition(defs):
    for name in sorted(ASSETS):
        assert defs.resolve_assets_def(name).partitions_def is weekly_partitions, name


def test_dependency_edges(graph):
    edges = {
        (parent.to_user_string(), key.to_user_string())
        for key in graph.get_all_asset_keys()
        for parent in graph.get(key).parent_keys
    }
    assert edges == EDGES | OFFER_EDGES


# ---------------------------------------------------------------------------- checks


def test_check_name_constants():
    assert {name: getattr(checks, name) for name in CHECK_NAMES} == CHECK_NAMES


def test_checks_and_blocking(defs):
    found = {
        name: {spec.name: spec.blocking for spec in defs.resolve_assets_def(name).check_specs}
        for name in ASSETS | OFFER_ASSETS
    }
    assert found == CHECKS | OFFER_CHECKS


def test_checks_are_described_and_attached_to_their_asset(defs):
    for name in sorted(ASSETS | OFFER_ASSETS):
        for spec in defs.resolve_assets_def(name).check_specs:
            assert spec.asset_key == dg.AssetKey(name)
            assert (spec.description or "").strip(), f"{name}:{spec.name} has no description"


# ---------------------------------------------------------------------------- model_version


def expected_code_versions(model_version: str, signals_version: str | None = None) -> dict[str, str | None]:
    # signals follow the code and the suitability rule, not the other weights
    code_only = {"signals": signals_version or load_weights(DEFAULT_WEIGHTS_FILE).signals_version}
    weekly = {name: model_version if name in MODEL_VERSIONED else code_only.get(name) for name in ASSETS}
    return (
        weekly | OFFER_CODE_VERSIONS | {WEIGHTS_SOURCE: None}
    )  # the weights change its data version instead  # the offer rules are data: not in any code version


def code_versions(defs) -> dict[str, str | None]:
    return {s.key.to_user_string(): s.code_version for s in defs.resolve_all_asset_specs()}


def test_code_version_is_the_model_version_of_the_loaded_weights(defs):
    weights = load_weights(settings.weights_file())
    assert settings.weights_file() is None  # nothing in the tmp NBP_HOME: the packaged default
    assert weights.model_version.startswith("nbp-1.0+w")
    assert code_versions(defs) == expected_code_versions(weights.model_version)
    for name in sorted(MODEL_VERSIONED - {"nbp_current"}):
        assert (
            defs.resolve_assets_def(name).metadata_by_key[dg.AssetKey(name)]["model_version"] == weights.model_version
        )
    assert defs.resolve_job_def(JOB).tags["model_version"] == weights.model_version


@pytest.mark.parametrize("where", ["NBP_WEIGHTS_FILE", "NBP_HOME/weights.csv"])
def test_changed_weights_change_the_code_version(defs, definitions_module, monkeypatch, tmp_path, where):
    default_version = load_weights(DEFAULT_WEIGHTS_FILE).model_version
    if where == "NBP_WEIGHTS_FILE":
        path = modified_weights(tmp_path / "tuned_weights.csv")
        monkeypatch.setenv("NBP_WEIGHTS_FILE", path)
    else:
        home = tmp_path / "home"
        home.mkdir()
        path = modified_weights(home / "weights.csv")
        monkeypatch.setenv("NBP_HOME", str(home))

    tuned_version = load_weights(path).model_version
    assert tuned_version != default_version

    rebuilt = definitions_module.build_definitions()
    assert code_versions(rebuilt) == expected_code_versions(tuned_version, load_weights(path).signals_version)
    # The definitions already built keep theirs.
    assert code_versions(defs) == expected_code_versions(default_version)


# ---------------------------------------------------------------------------- partitions


def test_weekly_partitions():
    assert weekly_partitions.timezone == "Europe/London"
    assert weekly_partitions.start == london("2025-01-06 00:00")
    assert weekly_partitions.get_first_partition_key() == "2025-01-06"
    assert weekly_partitions.cron_schedule == "0 0 * * 1"  # Monday 00:00 local
    # Only closed weeks are partitions: at Monday 2025-02-03 06:00 the week of 02-03 is open.
    keys = weekly_partitions.get_partition_keys(current_time=london("2025-02-03 06:00"))
    assert keys == ["2025-01-06", "2025-01-13", "2025-01-20", "2025-01-27"]
    many = weekly_partitions.get_partition_keys(current_time=london("2027-01-01 00:00"))
    assert len(many) == 103
    assert {date.fromisoformat(k).weekday() for k in many} == {0}


@pytest.mark.parametrize(
    "key",
    [
        "2025-01-06",  # the first week
        "2026-03-23",  # clocks go forward on Sunday 29 March: a 167-hour week
        "2026-10-19",  # clocks go back on Sunday 25 October: a 169-hour week
        "2026-11-09",
    ],
)
def test_week_is_evaluated_at_the_following_monday_midnight(key):
    week = Week.from_key(key)
    following_monday = date.fromisoformat(key) + timedelta(days=7)
    assert week.key == key
    assert week.evaluation_date == following_monday
    assert week.evaluated_at == datetime(following_monday.year, following_monday.month, following_monday.day)
    assert week.evaluated_at.tzinfo is None
    # ... which is where the Dagster partition's time window ends, in London wall time.
    window = weekly_partitions.time_window_for_partition_key(key)
    assert window.start.replace(tzinfo=None) == datetime.combine(week.start, datetime.min.time())
    assert window.end.replace(tzinfo=None) == week.evaluated_at


def test_week_key_must_be_a_monday():
    with pytest.raises(ValueError, match="2026-11-10"):
        Week.from_key("2026-11-10")


# ---------------------------------------------------------------------------- job and schedule


def test_weekly_job_selects_every_asset(defs):
    job = defs.resolve_job_def(JOB)
    assert key_names(job.asset_layer.selected_asset_keys) == ASSETS | {WEIGHTS_SOURCE}  # the weights are observed first
    assert job.partitions_def is weekly_partitions
    assert job.executor_def is dg.in_process_executor


def test_offer_assets_are_unpartitioned_and_run_by_their_jobs(defs):
    for name in sorted(OFFER_ASSETS):
        assert defs.resolve_assets_def(name).partitions_def is None, name
    for job_name, selected in OFFER_JOBS.items():
        job = defs.resolve_job_def(job_name)
        assert key_names(job.asset_layer.selected_asset_keys) == selected
        assert job.executor_def is dg.in_process_executor


def test_offer_sensor_snapshot(defs):
    sensor = defs.resolve_sensor_def("next_best_offer_sensor")
    assert sensor.minimum_interval_seconds == 15
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert {j.name for j in sensor.jobs} == set(OFFER_JOBS)
    assert "next_best_offer_sensor" in {s.name for s in defs.sensors}
    assert (nbo.GROUP, nbo.BATCH_JOB, nbo.TABLES_JOB, nbo.SENSOR) == (
        OFFER_GROUP,
        "next_best_offer_job",
        "offer_tables_job",
        "next_best_offer_sensor",
    )


def test_schedule_snapshot(defs):
    schedule = defs.resolve_schedule_def(SCHEDULE)
    assert schedule.job_name == JOB
    assert schedule.cron_schedule == SCHEDULE_CRON
    assert schedule.execution_timezone == SCHEDULE_TZ
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert [s.name for s in defs.schedules] == [SCHEDULE]


@pytest.mark.parametrize(
    ("tick", "expected_week"),
    [
        ("2026-11-16 06:00", "2026-11-09"),
        ("2025-01-13 06:00", "2025-01-06"),  # the first week, on its first tick
        ("2026-03-23 06:00", "2026-03-16"),  # Monday of the spring-forward week (GMT)
        ("2026-03-30 06:00", "2026-03-23"),  # first tick in BST: closes the 167-hour week
        ("2026-10-19 06:00", "2026-10-12"),  # Monday of the fall-back week (BST)
        ("2026-10-26 06:00", "2026-10-19"),  # first tick in GMT: closes the 169-hour week
    ],
)
def test_schedule_requests_the_week_that_just_closed(defs, tick, expected_week):
    schedule = defs.resolve_schedule_def(SCHEDULE)
    when = london(tick)
    assert when.weekday() == 0
    with dg.build_schedule_context(scheduled_execution_time=when) as context:
        result = schedule.evaluate_tick(context)
    assert [r.partition_key for r in result.run_requests or []] == [expected_week]
    assert Week.from_key(expected_week).evaluation_date == when.date()


def test_schedule_requests_nothing_before_the_first_week_closes(defs):
    schedule = defs.resolve_schedule_def(SCHEDULE)
    with dg.build_schedule_context(scheduled_execution_time=london("2025-01-06 06:00")) as context:
        result = schedule.evaluate_tick(context)
    assert not result.run_requests


# ---------------------------------------------------------------------------- deployment


def test_unknown_deployment_is_rejected(nbp_home, definitions_module, monkeypatch):
    monkeypatch.setenv("NBP_DEPLOYMENT", "snowflake-prod")
    with pytest.raises(ValueError, match="'snowflake-prod'"):
        build_resources()
    with pytest.raises(ValueError, match="'snowflake-prod'"):
        definitions_module.build_definitions()
    with pytest.raises(ValueError, match="'staging'"):
        build_resources("staging")


# Where each weekly asset lives, and the columns the UI shows: from the one table declaration.
TABLES = {
    "customers": "nbp_work.customers",
    "activity": "nbp_work.activity",
    "eligibility": "nbp_work.eligibility",
    "signals": "nbp_work.signals",
    "scores": "nbp_work.scores",
    "nbp_ranked": "product_intelligence.next_best_product",
}


def test_weekly_assets_show_their_table_and_columns():
    from nbp_assets.contract import tables
    from nbp_assets.definitions import build_definitions

    specs = {s.key.path[-1]: s for s in build_definitions("local").resolve_all_asset_specs()}
    declared = {
        t.name: t
        for t in (tables.CUSTOMERS, tables.ACTIVITY, tables.ELIGIBILITY, tables.SIGNALS, tables.SCORES, tables.HISTORY)
    }
    for asset, table in TABLES.items():
        meta = specs[asset].metadata
        assert meta["dagster/table_name"] == table
        columns = {c.name: c.type for c in meta["dagster/column_schema"].columns}
        assert columns == declared[table].column_types()
        assert specs[asset].description and len(specs[asset].description) > 80  # business meaning, for the UI
    history = {c.name: c.type for c in specs["nbp_ranked"].metadata["dagster/column_schema"].columns}
    assert history == {
        "party_id": "VARCHAR",
        "jurisdiction": "VARCHAR",
        "rank": "INTEGER",
        "product_id": "VARCHAR",
        "score": "DECIMAL(8,6)",
        "primary_signal": "VARCHAR",
        "model_version": "VARCHAR",
        "evaluated_at": "TIMESTAMP",
    }


# ---------------------------------------------------------------------------- governance


PERSONAL_DATA = {
    "customers",
    "activity",
    "eligibility",
    "signals",
    "scores",
    "nbp_ranked",
    "nbp_current",
    "next_best_offer",
    "next_best_offer_lookup",
}
CARRY_THE_MODEL = {
    "ranking_weights": "MOD-107",
    "scores": "MOD-107",
    "nbp_ranked": "MOD-107",
    "nbp_current": "MOD-107",
    "fairness_report": "MOD-107",
    "offer_outcomes": "MOD-107",
    "model_drift": "MOD-107",
    "offer_rules": "MOD-108",
    "next_best_offer": "MOD-108",
    "next_best_offer_lookup": "MOD-108",
}


def test_every_asset_has_owners_and_says_if_it_holds_personal_data(defs):
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    assert {k for k, s in specs.items() if not s.owners} == set()
    assert specs["fairness_report"].owners == ["team:compliance", "team:data-platform"]
    assert {k: s.tags.get("personal_data") for k, s in specs.items()} == {
        k: "yes" if k in PERSONAL_DATA else "no" for k in specs
    }
    assert {k: s.tags["model"] for k, s in specs.items() if "model" in s.tags} == CARRY_THE_MODEL


def test_the_weights_data_version_is_their_digest(tmp_path):
    from nbp_assets.weekly.weights_asset import observation

    default = load_weights(DEFAULT_WEIGHTS_FILE)
    tuned = load_weights(modified_weights(tmp_path / "tuned.csv"))
    assert observation(default).data_version.value == default.model_version.removeprefix(f"{MODEL_CODE_VERSION}+w")
    assert observation(tuned).data_version.value == tuned.model_version.removeprefix(f"{MODEL_CODE_VERSION}+w")
    assert observation(tuned).data_version != observation(default).data_version


def test_the_first_week_is_configurable(monkeypatch, tmp_path):
    monkeypatch.setenv("NBP_HOME", str(tmp_path))
    monkeypatch.delenv("NBP_FIRST_WEEK", raising=False)
    assert settings.first_week() == "2025-01-06"
    settings.first_week_file().write_text("2026-10-05\n")  # what `demo` records for its bank
    assert settings.first_week() == "2026-10-05"
    monkeypatch.setenv("NBP_FIRST_WEEK", "2026-11-02")
    assert settings.first_week() == "2026-11-02"
    monkeypatch.setenv("NBP_FIRST_WEEK", "2026-11-03")
    with pytest.raises(settings.ConfigurationError, match="NBP_FIRST_WEEK must be a Monday.*'2026-11-03'"):
        settings.first_week()
