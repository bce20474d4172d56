"""The production path, run whole where no Snowflake is reachable.

NBP_DEPLOYMENT=production resources (SnowflakeWarehouse via dagster-snowflake, PostgreSQL
server) run the weekly job against fakesnow in patch mode: snowflake.connector.connect and
write_pandas are replaced by fakesnow's, which answer Snowflake SQL from an in-process DuckDB.
storage/snowflake.py looks write_pandas up at call time and never relies on Snowflake's
"does not exist" wording, so fakesnow's standard patch targets are all it needs.

The same synthetic bank and weights go through the local DuckDB path; both must produce the
same rows. PostgreSQL is real (the `postgres_url` fixture).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import dagster as dg
import pandas as pd
import psycopg
import pytest

from nbp_assets.core.partitions import Week
from nbp_assets.core.warehouse import HISTORY_TABLE, SOURCE_SCHEMA, WORK_SCHEMA
from nbp_assets.definitions import WEEKLY_JOB, build_definitions
from nbp_assets.resources import open_warehouse
from nbp_assets.sources.synthetic import generate
from nbp_assets.weekly.weights import DEFAULT_WEIGHTS_FILE

pytestmark = [
    pytest.mark.integration,
    # fakesnow's own advice to itself (it copies results through Arrow), not about our code
    pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning"),
]

WEEK = Week.from_key("2026-11-09")
PREVIOUS = Week.from_key("2026-11-02")
CUSTOMERS = 500
PASSWORD = "Nbp-Test-Pa55w0rd-q7Zx"
WORK_TABLES = ["customers", "activity", "eligibility", "signals", "scores", "fairness_report"]
SNOWFLAKE_ENV = {
    "SNOWFLAKE_ACCOUNT": "nbp-test-account",
    "SNOWFLAKE_USER": "NBP_ENGINE",
    "SNOWFLAKE_PASSWORD": PASSWORD,
    "SNOWFLAKE_ROLE": "NBP_ENGINE_ROLE",
    "SNOWFLAKE_WAREHOUSE": "NBP_WH",
    "SNOWFLAKE_DATABASE": "NBP_TEST",
}


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_week(defs: dg.Definitions, week: Week, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(WEEKLY_JOB).execute_in_process(
        partition_key=week.key, instance=instance, raise_on_error=False
    )


def failures(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(e.message or "" for e in result.all_events if e.is_failure)


@pytest.fixture(scope="module")
def paths(postgres_url, tmp_path_factory):
    """One week of the same bank through both deployments (fakesnow patched for the module)."""
    import fakesnow
    import snowflake.connector

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS product_intelligence CASCADE")
    tables = generate(CUSTOMERS, 11, end_week=WEEK.start, history_weeks=2)
    records = _Records()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBP_HOME", str(tmp_path_factory.mktemp("home")))
        mp.setenv("NBP_POSTGRES_URL", postgres_url)
        for var in (
            "NBP_DEPLOYMENT",
            "NBP_WEIGHTS_FILE",
            "NBP_WEIGHTS_TABLE",
            "NBP_WAREHOUSE_PATH",
            "SNOWFLAKE_PRIVATE_KEY",
            "SNOWFLAKE_PRIVATE_KEY_PATH",
            "SNOWFLAKE_PRIVATE_KEY_PASSWORD",
        ):
            mp.delenv(var, raising=False)
        for var, value in SNOWFLAKE_ENV.items():
            mp.setenv(var, value)

        local = build_definitions("local")
        for name, df in tables.items():
            local.resources["warehouse"].replace_table(f"{SOURCE_SCHEMA}.{name}", df)
        local_result = run_week(local, WEEK, dg.DagsterInstance.ephemeral())

        with fakesnow.patch():
            warehouse = open_warehouse("production")
            with warehouse.session():
                for name, df in tables.items():
                    warehouse.replace_table(f"{SOURCE_SCHEMA}.{name}", df)
                warehouse.replace_table("nbp_config.nbp_weights", pd.read_csv(DEFAULT_WEIGHTS_FILE))
            production = build_definitions("production")
            instance = dg.DagsterInstance.ephemeral()
            logging.getLogger().addHandler(records)
            previous_level = logging.getLogger().level
            logging.getLogger().setLevel(logging.DEBUG)
            try:
                snowflake_result = run_week(production, WEEK, instance)
            finally:
                logging.getLogger().removeHandler(records)
                logging.getLogger().setLevel(previous_level)
            yield SimpleNamespace(
                local=local,
                local_result=local_result,
                production=production,
                snowflake_result=snowflake_result,
                warehouse=warehouse,
                instance=instance,
                log_messages=records.messages,
                connect_calls=snowflake.connector.connect.call_args_list,  # fakesnow's patch records them
            )


def week_rows(warehouse, table: str, column: str, value: str) -> pd.DataFrame:
    df = warehouse.query(f"SELECT * FROM {table} WHERE {column} = {value}")
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def test_both_paths_run_the_whole_week(paths):
    assert paths.local_result.success, failures(paths.local_result)
    assert paths.snowflake_result.success, failures(paths.snowflake_result)
    materialized = {e.asset_key.to_user_string() for e in paths.snowflake_result.get_asset_materialization_events()}
    assert materialized == {
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
    # The weights came from the Snowflake configuration table, read when the run started (not
    # when the definitions loaded, which name the table instead): same content, same model_version.
    key = dg.AssetKey("nbp_ranked")
    version = paths.local.get_assets_def(key).code_versions_by_key[key]
    assert paths.production.get_assets_def(key).code_versions_by_key[key] == "nbp-1.0+w@nbp_config.nbp_weights"
    meta = paths.snowflake_result.asset_materializations_for_node("scores")[-1].metadata
    assert meta["model_version"].value == version
    assert "table nbp_config.nbp_weights" in meta["weights_source"].value


def test_snowflake_and_duckdb_produce_the_same_rows(paths):
    local_wh = paths.local.resources["warehouse"]
    history_at = f"TIMESTAMP '{WEEK.evaluated_at:%Y-%m-%d %H:%M:%S}'"
    local = week_rows(local_wh, HISTORY_TABLE, "evaluated_at", history_at)
    snowflake = week_rows(paths.warehouse, HISTORY_TABLE, "evaluated_at", history_at)
    assert len(local) > 3 * CUSTOMERS // 2
    pd.testing.assert_frame_equal(snowflake, local, check_dtype=False)
    for name in WORK_TABLES:
        table = f"{WORK_SCHEMA}.{name}"
        local = week_rows(local_wh, table, "week_start", f"DATE '{WEEK.key}'")
        snowflake = week_rows(paths.warehouse, table, "week_start", f"DATE '{WEEK.key}'")
        assert len(local) > 0, table
        pd.testing.assert_frame_equal(snowflake, local, check_dtype=False, obj=table)


def test_history_table_has_the_seeds_ddl(paths):
    columns = paths.warehouse.query(
        "SELECT column_name, data_type, numeric_precision, numeric_scale, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'PRODUCT_INTELLIGENCE' AND table_name = 'NEXT_BEST_PRODUCT' ORDER BY ordinal_position"
    )
    types = dict(zip(columns["column_name"], columns["data_type"]))
    assert list(types) == [
        "PARTY_ID",
        "JURISDICTION",
        "RANK",
        "PRODUCT_ID",
        "SCORE",
        "PRIMARY_SIGNAL",
        "MODEL_VERSION",
        "EVALUATED_AT",
    ]
    assert types["SCORE"] == "NUMBER"
    score = columns[columns["column_name"] == "SCORE"].iloc[0]
    assert (score["numeric_precision"], score["numeric_scale"]) == (8, 6)
    assert types["RANK"] == "NUMBER" and types["EVALUATED_AT"] == "TIMESTAMP_NTZ"
    assert {types[c] for c in ("PARTY_ID", "JURISDICTION", "PRODUCT_ID", "PRIMARY_SIGNAL", "MODEL_VERSION")} == {"TEXT"}
    assert set(columns["is_nullable"]) == {"NO"}
    # fairness_report has a column named like a reserved word: written and read back by name
    assert "group" in paths.warehouse.column_names(f"{WORK_SCHEMA}.fairness_report")


def test_rerun_replaces_the_week_and_backfill_adds_its_own(paths):
    history_at = f"TIMESTAMP '{WEEK.evaluated_at:%Y-%m-%d %H:%M:%S}'"
    before = week_rows(paths.warehouse, HISTORY_TABLE, "evaluated_at", history_at)
    work_before = {
        t: len(week_rows(paths.warehouse, f"{WORK_SCHEMA}.{t}", "week_start", f"DATE '{WEEK.key}'"))
        for t in WORK_TABLES
    }

    rerun = run_week(paths.production, WEEK, paths.instance)
    assert rerun.success, failures(rerun)
    pd.testing.assert_frame_equal(week_rows(paths.warehouse, HISTORY_TABLE, "evaluated_at", history_at), before)
    for table, n in work_before.items():
        assert len(week_rows(paths.warehouse, f"{WORK_SCHEMA}.{table}", "week_start", f"DATE '{WEEK.key}'")) == n
    dupes = paths.warehouse.query(
        f"SELECT party_id, rank, evaluated_at, count(*) AS n FROM {HISTORY_TABLE} "
        "GROUP BY party_id, rank, evaluated_at HAVING count(*) > 1"
    )
    assert dupes.empty

    backfill = run_week(paths.production, PREVIOUS, paths.instance)
    assert backfill.success, failures(backfill)
    weeks = paths.warehouse.query(f"SELECT evaluated_at, count(*) AS n FROM {HISTORY_TABLE} GROUP BY 1 ORDER BY 1")
    assert list(weeks["evaluated_at"]) == [pd.Timestamp(PREVIOUS.evaluated_at), pd.Timestamp(WEEK.evaluated_at)]
    assert weeks["n"].iloc[1] == len(before)


def test_credentials_come_from_the_environment_and_are_never_shown(paths):
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    # Resolved from SNOWFLAKE_* when the run started ...
    logins = [call.kwargs for call in paths.connect_calls]
    assert logins and all(k["password"] == PASSWORD and k["account"] == "nbp-test-account" for k in logins)
    assert {k["role"] for k in logins} == {"NBP_ENGINE_ROLE"}
    # ... and shown in the UI as variable names only.
    repository = serialize_value(RepositorySnap.from_def(paths.production.get_repository_def()))
    assert "SNOWFLAKE_PASSWORD" in repository and "NBP_POSTGRES_URL" in repository
    run = paths.instance.get_run_by_id(paths.snowflake_result.run_id)
    shown = [
        repository,
        serialize_value(run.run_config),
        serialize_value(paths.instance.get_job_snapshot(run.job_snapshot_id)),
    ]
    shown += [serialize_value(entry) for entry in paths.instance.all_logs(run.run_id)]
    shown += paths.log_messages
    assert len(shown) > 50
    assert not [text for text in shown if PASSWORD in text]
    # The PostgreSQL URL is an EnvVar too: metadata names host and database, never the URL.
    meta = paths.snowflake_result.asset_materializations_for_node("nbp_current")[-1].metadata
    assert "postgresql://" not in meta["postgres"].value
