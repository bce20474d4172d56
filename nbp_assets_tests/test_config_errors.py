"""Bad configuration fails fast, with one readable error that names what is wrong.

Unknown deployment, missing or wrong credentials, an unreachable PostgreSQL and a missing
upstream table are each caught before anything is written; no message carries a secret.
Snowflake is fakesnow: patched in-process (its databases kept in files between tests) or,
for a refused login, fakesnow's HTTP server behind a password check.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import closing, contextmanager
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from nbp_assets.core.partitions import Week
from nbp_assets.core.settings import ConfigurationError
from nbp_assets.core.warehouse import HISTORY_TABLE, SOURCE_SCHEMA
from nbp_assets.definitions import WEEKLY_JOB, build_definitions
from nbp_assets.publish.postgres import PostgresUnavailable
from nbp_assets.resources import (
    build_resources,
    check_deployment,
    deployment_weights,
    open_warehouse,
    snowflake_warehouse,
)
from nbp_assets.sources.synthetic import generate
from nbp_assets.weekly.weights import DEFAULT_WEIGHTS_FILE

pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")  # fakesnow's, not ours

REPO_ROOT = Path(__file__).resolve().parents[1]
WEEK = Week.from_key("2026-11-09")
PASSWORD = "Right-Pa55word-x81"
SNOWFLAKE_ENV = {
    "SNOWFLAKE_ACCOUNT": "nbp-test-account",
    "SNOWFLAKE_USER": "NBP_ENGINE",
    "SNOWFLAKE_PASSWORD": PASSWORD,
    "SNOWFLAKE_WAREHOUSE": "NBP_WH",
    "SNOWFLAKE_DATABASE": "NBP_TEST",
}
UNSET = (
    "NBP_DEPLOYMENT",
    "NBP_WEIGHTS_FILE",
    "NBP_WEIGHTS_TABLE",
    "NBP_WAREHOUSE_PATH",
    "NBP_POSTGRES_URL",
    "SNOWFLAKE_ROLE",
    "SNOWFLAKE_PRIVATE_KEY",
    "SNOWFLAKE_PRIVATE_KEY_PATH",
    "SNOWFLAKE_PRIVATE_KEY_PASSWORD",
    "SNOWFLAKE_LOGIN_TIMEOUT",
    "DAGSTER_HOME",
    "DAGSTER_POSTGRES_URL",
)


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A production environment with nothing else set; tests change what they break."""
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    for var in UNSET:
        monkeypatch.delenv(var, raising=False)
    for var, value in SNOWFLAKE_ENV.items():
        monkeypatch.setenv(var, value)
    return monkeypatch


def python(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in UNSET}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=clean | env, capture_output=True, text=True, timeout=120
    )


def init_failure(result: dg.ExecuteInProcessResult) -> str:
    """The error that stopped the run while its resources were set up, before any step ran."""
    [event] = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    return event.event_specific_data.error.message.strip()


# ---------------------------------------------------------------------------- deployment name, env


def test_local_import_never_loads_snowflake_libraries(tmp_path):
    probe = python(
        "-c",
        "import sys, nbp_assets.definitions as d; assert d.defs.resources['warehouse'].describe().startswith('duckdb');"
        # a bare `snowflake` namespace package is pre-loaded by the interpreter's .pth files: free
        "print(sorted(m for m in sys.modules if m.startswith('snowflake.') or m.split('.')[0] in"
        " ('dagster_snowflake', 'dagster_snowflake_pandas', 'fakesnow')))",
        NBP_HOME=str(tmp_path),
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"


def test_unknown_deployment_is_one_readable_error(env, tmp_path):
    with pytest.raises(ConfigurationError, match=r"unknown NBP_DEPLOYMENT 'prod': expected one of local, production"):
        build_resources("prod")
    with pytest.raises(ConfigurationError, match="'prod'"):
        build_definitions("prod")
    cli = python("-m", "nbp_assets", "check", NBP_DEPLOYMENT="prod", NBP_HOME=str(tmp_path))
    assert cli.returncode == 2
    assert cli.stderr.strip() == (
        "configuration check FAILED: unknown NBP_DEPLOYMENT 'prod': expected one of local, production"
    )


@pytest.mark.parametrize(
    "command", [("materialize",), ("backfill", "2026-11-02", "2026-11-09"), ("demo", "--fresh"), ("check",)]
)
def test_a_bad_intersection_refuses_every_command_in_one_line_and_writes_nothing(tmp_path, command):
    home = tmp_path / "home"
    cli = python(
        "-m", "nbp_assets", *command, NBP_HOME=str(home), NBP_FAIRNESS_INTERSECTIONS="jurisdiction*age_band,gender"
    )
    assert cli.returncode == 2
    reason = (
        "NBP_FAIRNESS_INTERSECTIONS item 'gender' is not a pair of two dimensions a*b; "
        "allowed dimensions: jurisdiction, segment, age_band, gender, status"
    )
    assert cli.stderr.strip() == (f"configuration check FAILED: {reason}" if command == ("check",) else reason)
    assert not home.exists()  # no warehouse, no Dagster home, no PostgreSQL data directory


def test_missing_settings_are_listed_together(env):
    for var in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_PASSWORD"):
        env.delenv(var)
    env.setenv("NBP_DEPLOYMENT", "production")
    with pytest.raises(ConfigurationError) as raised:
        build_definitions()  # what loading the code location does
    message = str(raised.value)
    assert "missing environment variables: SNOWFLAKE_ACCOUNT, SNOWFLAKE_WAREHOUSE, NBP_POSTGRES_URL" in message
    assert (
        "no Snowflake credential: set one of SNOWFLAKE_PASSWORD, SNOWFLAKE_PRIVATE_KEY, SNOWFLAKE_PRIVATE_KEY_PATH"
        in message
    )
    assert "SNOWFLAKE_USER" not in message and "SNOWFLAKE_DATABASE" not in message  # those are set


def test_two_credentials_or_a_bad_timeout_are_rejected(env):
    env.setenv("NBP_POSTGRES_URL", "postgresql://nbp@127.0.0.1:1/nbp")
    env.setenv("SNOWFLAKE_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----")
    env.setenv("SNOWFLAKE_LOGIN_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError) as raised:
        build_resources("production")
    message = str(raised.value)
    assert "more than one Snowflake credential set (SNOWFLAKE_PASSWORD, SNOWFLAKE_PRIVATE_KEY)" in message
    assert "SNOWFLAKE_LOGIN_TIMEOUT 'soon'" in message
    assert PASSWORD not in message


# ---------------------------------------------------------------------------- wrong credentials


KEY_PASSPHRASE = "Key-Passphrase-93hd"


@pytest.fixture(scope="module")
def encrypted_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSPHRASE.encode()),
        )
        .decode()
    )


def test_unreadable_private_key_is_named_without_the_passphrase(env, encrypted_key):
    passphrase, key = KEY_PASSPHRASE, encrypted_key
    env.delenv("SNOWFLAKE_PASSWORD")
    env.setenv("SNOWFLAKE_PRIVATE_KEY", key)
    env.setenv("SNOWFLAKE_PRIVATE_KEY_PASSWORD", "not-" + passphrase)
    env.setenv("NBP_POSTGRES_URL", "postgresql://nbp@127.0.0.1:1/nbp")
    with pytest.raises(ConfigurationError) as raised:
        deployment_weights("production")  # reading the weights table logs in
    message = str(raised.value)
    assert "cannot log in to Snowflake account nbp-test-account as user NBP_ENGINE" in message
    assert "private key" in message and "SNOWFLAKE_PRIVATE_KEY" in message
    assert passphrase not in message and "BEGIN" not in message and "\n" not in message


@contextmanager
def snowflake_server_requiring(password: str):
    """fakesnow's HTTP server, refusing logins with another password as Snowflake does (390100)."""
    import fakesnow.server as fake
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def login(request: Request):
        body = await request.body()  # cached: fakesnow's handler reads it again
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if json.loads(body)["data"].get("PASSWORD") != password:
            return JSONResponse(
                {
                    "data": None,
                    "code": "390100",
                    "success": False,
                    "message": "Incorrect username or password was specified.",
                }
            )
        return await fake.login_request(request)

    app = Starlette(
        routes=[
            Route("/session/v1/login-request", login, methods=["POST"]),
            *[r for r in fake.app.routes if getattr(r, "path", "") != "/session/v1/login-request"],
        ]
    )
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "fakesnow server did not start"
    try:
        yield {
            "host": "127.0.0.1",
            "port": port,
            "protocol": "http",
            "network_timeout": 5,
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        }
    finally:
        server.should_exit = True
        thread.join(10)


def test_wrong_password_is_refused_by_name_without_the_password(env):
    env.setenv("SNOWFLAKE_PASSWORD", "Wrong-Pa55word-k2")
    with snowflake_server_requiring(PASSWORD) as where:
        with pytest.raises(ConfigurationError) as raised:
            snowflake_warehouse(resolved=True, **where).check_required_tables()
        env.setenv("SNOWFLAKE_PASSWORD", PASSWORD)  # the same server lets the right one in
        assert snowflake_warehouse(resolved=True, **where).query("SELECT 1 AS ok")["ok"].tolist() == [1]
    message = str(raised.value)
    assert "cannot log in to Snowflake account nbp-test-account as user NBP_ENGINE" in message
    assert "Incorrect username or password was specified" in message
    assert "Wrong-Pa55word-k2" not in message and PASSWORD not in message


def test_unreachable_snowflake_is_named_by_account_and_host(env):
    env.setenv("SNOWFLAKE_LOGIN_TIMEOUT", "1")  # the connector still retries for about 4 s
    with closing(socket.socket()) as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConfigurationError) as raised:
        snowflake_warehouse(resolved=True, host="127.0.0.1", port=port, protocol="http").query("SELECT 1")
    message = str(raised.value)
    assert message.startswith(
        f"cannot log in to Snowflake account nbp-test-account as user NBP_ENGINE (host 127.0.0.1:{port}"
    )
    assert "Could not connect to Snowflake backend" in message and PASSWORD not in message


# ---------------------------------------------------------------------------- unreachable, missing


@pytest.fixture(scope="module")
def fake_bank(tmp_path_factory):
    """A small bank and the weights table in fakesnow database files, reopened by each test."""
    import fakesnow

    db_path = tmp_path_factory.mktemp("fakesnow")
    with pytest.MonkeyPatch.context() as mp:
        for var, value in SNOWFLAKE_ENV.items():
            mp.setenv(var, value)
        mp.setenv("NBP_POSTGRES_URL", "postgresql://unused@127.0.0.1:1/unused")
        with fakesnow.patch(db_path=db_path):
            warehouse = open_warehouse("production")
            with warehouse.session():
                for name, df in generate(150, 5, end_week=WEEK.start, history_weeks=1).items():
                    warehouse.replace_table(f"{SOURCE_SCHEMA}.{name}", df)
                warehouse.replace_table("nbp_config.nbp_weights", pd.read_csv(DEFAULT_WEIGHTS_FILE))
    return db_path


def nothing_written(warehouse) -> bool:
    return not any(warehouse.table_exists(t) for t in ("nbp_work.customers", "nbp_work.activity", HISTORY_TABLE))


@pytest.mark.integration
def test_unreachable_postgres_stops_the_run_before_anything_is_written(env, fake_bank):
    import fakesnow

    env.setenv("NBP_POSTGRES_URL", "postgresql://nbp:Pg-Secret-55@127.0.0.1:1/nbp_apps")
    with fakesnow.patch(db_path=fake_bank):
        warehouse = open_warehouse("production")
        with pytest.raises(PostgresUnavailable) as raised:
            check_deployment("production")
        result = (
            build_definitions("production")
            .resolve_job_def(WEEKLY_JOB)
            .execute_in_process(partition_key=WEEK.key, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        )
        assert nothing_written(warehouse)
    assert "cannot connect to PostgreSQL (host=127.0.0.1 port=1 dbname=nbp_apps)" in str(raised.value)
    assert not result.success
    text = init_failure(result)
    assert text.startswith(
        "nbp_assets.publish.postgres.PostgresUnavailable: cannot connect to PostgreSQL "
        "(host=127.0.0.1 port=1 dbname=nbp_apps)"
    )
    assert not result.get_step_success_events()
    for shown in (str(raised.value), text):
        assert "Pg-Secret-55" not in shown and PASSWORD not in shown


@pytest.mark.integration
def test_missing_upstream_table_is_named_before_anything_is_written(env, fake_bank, postgres_url):
    import fakesnow

    env.setenv("NBP_POSTGRES_URL", postgres_url)
    with fakesnow.patch(db_path=fake_bank):
        warehouse = open_warehouse("production")
        assert check_deployment("production")[-3].startswith("weights: snowflake account nbp-test-account")
        behaviour = warehouse.query(f"SELECT * FROM {SOURCE_SCHEMA}.behaviour")
        warehouse.query(f"DROP TABLE {SOURCE_SCHEMA}.behaviour")
        try:
            with pytest.raises(ConfigurationError, match=r"required table\(s\) missing .*: nbp_source\.behaviour;"):
                check_deployment("production")
            result = (
                build_definitions("production")
                .resolve_job_def(WEEKLY_JOB)
                .execute_in_process(
                    partition_key=WEEK.key, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
                )
            )
            assert not result.success
            assert init_failure(result) == (
                "nbp_assets.core.snowflake.MissingTables: snowflake account nbp-test-account, database NBP_TEST: "
                "required table(s) missing or not visible to this role: nbp_source.behaviour; nothing was written"
            )
            assert not result.get_step_success_events()
            assert nothing_written(warehouse)
        finally:
            warehouse.replace_table(f"{SOURCE_SCHEMA}.behaviour", behaviour)


@pytest.mark.integration
def test_missing_weights_table_stops_the_run_before_anything_is_written(env, fake_bank, postgres_url):
    import fakesnow

    env.setenv("NBP_POSTGRES_URL", postgres_url)
    env.setenv("NBP_WEIGHTS_TABLE", "nbp_config.weights_v2")
    missing = "weights configuration table nbp_config.weights_v2 does not exist"
    with fakesnow.patch(db_path=fake_bank):
        warehouse = open_warehouse("production")
        with pytest.raises(ConfigurationError, match=missing):
            deployment_weights("production")
        # The definitions load without reading it; the run reads it first, and stops there.
        result = (
            build_definitions("production")
            .resolve_job_def(WEEKLY_JOB)
            .execute_in_process(partition_key=WEEK.key, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        )
        assert not result.success
        assert missing in init_failure(result)
        assert not result.get_step_success_events()
        assert nothing_written(warehouse)


@pytest.mark.integration
def test_production_definitions_load_while_snowflake_is_unreachable(env, postgres_url, monkeypatch):
    """Loading the code location never logs in to Snowflake: with an account that cannot be
    reached, the production definitions load (UI, schedules and sensors stay up); the first
    login is a run's, and that run fails before any step, naming the account."""
    import snowflake.connector

    attempts = []

    def unreachable(*args, **kwargs):
        attempts.append(kwargs)
        raise snowflake.connector.errors.OperationalError("Could not connect to Snowflake backend")

    monkeypatch.setattr(snowflake.connector, "connect", unreachable)
    env.setenv("SNOWFLAKE_ACCOUNT", "nbp-unreachable-account")
    env.setenv("NBP_POSTGRES_URL", postgres_url)
    defs = build_definitions("production")
    job = defs.resolve_job_def(WEEKLY_JOB)
    key = dg.AssetKey("nbp_ranked")
    assert defs.resolve_assets_def(key).code_versions_by_key[key] == "nbp-1.0+w@nbp_config.nbp_weights"
    assert attempts == []

    result = job.execute_in_process(
        partition_key=WEEK.key, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.success and attempts
    assert "cannot log in to Snowflake account nbp-unreachable-account as user NBP_ENGINE" in init_failure(result)
    assert not result.get_step_success_events()


@pytest.mark.integration
def test_key_pair_login_sends_the_decrypted_key_and_no_password(env, fake_bank, encrypted_key):
    import fakesnow
    import snowflake.connector

    env.delenv("SNOWFLAKE_PASSWORD")
    env.setenv("SNOWFLAKE_PRIVATE_KEY", encrypted_key)
    env.setenv("SNOWFLAKE_PRIVATE_KEY_PASSWORD", KEY_PASSPHRASE)
    env.setenv("NBP_POSTGRES_URL", "postgresql://unused@127.0.0.1:1/unused")
    with fakesnow.patch(db_path=fake_bank):
        deployment_weights("production")  # logs in to read the weights table
        [login] = [call.kwargs for call in snowflake.connector.connect.call_args_list]
    assert "password" not in login and login["user"] == "NBP_ENGINE"
    assert isinstance(login["private_key"], bytes) and login["private_key"][:1] == b"0"  # DER, decrypted
