"""Dagster's own state in PostgreSQL, as deploy/dagster.yaml configures it for production.

The template is used as shipped: copied into a fresh DAGSTER_HOME, with DAGSTER_POSTGRES_URL
pointing at a database created for the test on the real test PostgreSQL. A week is
materialized through that instance; a new instance then reads the run, the materialization
and its model_version back. The local default (no dagster.yaml settings) is untouched.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import psycopg
import pytest

from nbp_assets.core.partitions import Week
from nbp_assets.core.settings import ConfigurationError
from nbp_assets.core.warehouse import SOURCE_SCHEMA
from nbp_assets.definitions import WEEKLY_JOB, build_definitions
from nbp_assets.resources import check_deployment
from nbp_assets.sources.synthetic import generate

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"
WEEK = Week.from_key("2026-11-09")


def with_database(url: str, database: str, scheme: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((scheme, parts.netloc, f"/{database}", parts.query, ""))


@pytest.fixture
def dagster_database(postgres_url):
    """A database of its own for Dagster's storage, dropped afterwards; yields its psycopg2 URL."""
    name = f"nbp_dagster_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(postgres_url, name, "postgresql+psycopg2")
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def production_instance_home(tmp_path, monkeypatch, dagster_database):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(TEMPLATE, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", dagster_database)
    return home


def test_week_materialized_through_postgres_instance_is_read_back(
    production_instance_home, dagster_database, clean_postgres, tmp_path, monkeypatch
):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    monkeypatch.setenv("NBP_HOME", str(tmp_path / "nbp"))
    monkeypatch.setenv("NBP_POSTGRES_URL", clean_postgres)
    for var in ("NBP_DEPLOYMENT", "NBP_WEIGHTS_FILE", "NBP_WAREHOUSE_PATH"):
        monkeypatch.delenv(var, raising=False)
    defs = build_definitions("local")
    for name, df in generate(300, 3, end_week=WEEK.start, history_weeks=1).items():
        defs.resources["warehouse"].replace_table(f"{SOURCE_SCHEMA}.{name}", df)
    key = dg.AssetKey("nbp_ranked")
    model_version = defs.get_assets_def(key).code_versions_by_key[key]

    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        result = defs.resolve_job_def(WEEKLY_JOB).execute_in_process(
            partition_key=WEEK.key, instance=instance, raise_on_error=False
        )
        assert result.success

    with dg.DagsterInstance.get() as again:  # a new instance: only what PostgreSQL kept
        run = again.get_run_by_id(result.run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags["dagster/partition"] == WEEK.key
        event = again.get_latest_materialization_event(key)
        assert event.run_id == result.run_id
        materialization = event.asset_materialization
        assert materialization.partition == WEEK.key
        assert materialization.metadata["model_version"].value == model_version
        assert again.get_materialized_partitions(dg.AssetKey("nbp_current")) == {WEEK.key}
        kinds = {entry.dagster_event_type for entry in again.all_logs(result.run_id)}
        assert {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION} <= kinds

    # The rows are in PostgreSQL itself, not in a file under DAGSTER_HOME.
    with psycopg.connect(dagster_database.replace("postgresql+psycopg2://", "postgresql://", 1)) as conn:
        runs = conn.execute("SELECT count(*) FROM runs WHERE run_id = %s", (result.run_id,)).fetchone()[0]
        mats = conn.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (result.run_id,),
        ).fetchone()[0]
    # every asset the run materialized (the weekly assets; ranking_weights is observed, not materialized)
    assert runs == 1 and mats == len(result.get_asset_materialization_events()) >= 8
    assert not list(production_instance_home.glob("**/*.db"))


def test_check_command_verifies_the_instance_storage(production_instance_home, tmp_path, monkeypatch, postgres_url):
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "nbp"))
    monkeypatch.setenv("NBP_POSTGRES_URL", postgres_url)
    monkeypatch.delenv("NBP_DEPLOYMENT", raising=False)
    assert (
        check_deployment("local")[-1] == f"dagster instance: {production_instance_home} (PostgresRunStorage) reachable"
    )

    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql://dagster:Dg-Secret-4@127.0.0.1:1/dagster")
    with pytest.raises(ConfigurationError, match=r"DAGSTER_POSTGRES_URL must start with postgresql\+psycopg2://"):
        check_deployment("local")

    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql+psycopg2://dagster:Dg-Secret-4@127.0.0.1:1/dagster")
    with pytest.raises(ConfigurationError) as raised:
        check_deployment("local")
    message = str(raised.value)
    assert message.startswith(
        "Dagster instance storage (DAGSTER_POSTGRES_URL): cannot connect to PostgreSQL "
        "(host=127.0.0.1 port=1 dbname=dagster)"
    )
    assert "Dg-Secret-4" not in message
