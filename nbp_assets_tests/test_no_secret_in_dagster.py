"""No PostgreSQL password in Dagster's storage or in what the UI shows.

NBP_POSTGRES_URL carries the password of the apps' PostgreSQL. The local resources pass it to
Dagster as an EnvVar reference (as production does): run storage, event log, job snapshots
and the UI's resource config hold the variable's name; the value is resolved in the run.

The tests' PostgreSQL trusts local socket connections, so a password in the URL is accepted
and ignored; the URL still has to work (the run connects through it). A URL that carries a
real password (NBP_TEST_POSTGRES_URL) is used as it is, with its own password as the secret.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import textwrap
import zlib
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import pytest

from nbp_assets.cli import LOCAL_INSTANCE_YAML, main

pytestmark = pytest.mark.integration

DISTINCTIVE = "Nbp-Pg-Secret-4fQz9Lw2"

PROBE_DEFS = textwrap.dedent("""
    import dagster as dg
    import psycopg

    from nbp_assets.resources import build_resources
    from nbp_assets.core.postgres_resource import PostgresResource


    @dg.op
    def touch_postgres(context, postgres: PostgresResource) -> str:
        with psycopg.connect(postgres.conninfo()) as conn:
            user = conn.execute("SELECT current_user").fetchone()[0]
        context.log.info(f"connected to {postgres.describe()} as {user}")
        return user


    @dg.job
    def postgres_probe():
        touch_postgres()


    defs = dg.Definitions(jobs=[postgres_probe], resources=build_resources("local"))
""")

FULL_LOCATION = "from nbp_assets.definitions import build_definitions\ndefs = build_definitions()\n"

RESOURCES_QUERY = """
query Resources($selector: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $selector) {
    __typename
    ... on ResourceDetailsList { results { name configuredValues { key value type } } }
    ... on PythonError { message }
  }
}
"""


def secret_url(url: str) -> tuple[str, str]:
    """(URL with a password, the password)."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    hostport = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{parts.username or 'postgres'}:{DISTINCTIVE}@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc)), DISTINCTIVE


@pytest.fixture
def env(tmp_path, monkeypatch, clean_postgres):
    url, secret = secret_url(clean_postgres)
    home = tmp_path / "home"
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML)
    monkeypatch.setenv("NBP_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("NBP_POSTGRES_URL", url)
    monkeypatch.delenv("NBP_DEPLOYMENT", raising=False)
    return {"home": home, "dagster_home": dagster_home, "secret": secret, "url": url}


def _module(path: Path, source: str):
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _repository_snapshot(defs: dg.Definitions) -> str:
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    return serialize_value(RepositorySnap.from_def(defs.get_repository_def()))


def _ui_resources(instance: dg.DagsterInstance, python_file: Path) -> dict:
    """The UI's view of the location's resources, from the webserver's GraphQL API (in process)."""
    from dagster._core.test_utils import in_process_test_workspace
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster_graphql.test.utils import execute_dagster_graphql, infer_repository_selector

    origin = LoadableTargetOrigin(python_file=str(python_file), attribute="defs")
    with in_process_test_workspace(instance, origin) as context:
        result = execute_dagster_graphql(context, RESOURCES_QUERY, {"selector": infer_repository_selector(context)})
    answer = result.data["allTopLevelResourceDetailsOrError"]
    assert answer["__typename"] == "ResourceDetailsList", answer
    return {r["name"]: {v["key"]: (v["value"], v["type"]) for v in r["configuredValues"]} for r in answer["results"]}


def _files_holding(folder: Path, secret: str) -> list[str]:
    """Every file under folder that holds the secret: as raw bytes, or (SQLite databases) in
    any cell, zlib-compressed cells decompressed (Dagster stores snapshots compressed)."""
    needle = secret.encode()
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files, f"nothing stored under {folder}"
    found = [str(p) for p in files if needle in p.read_bytes()]
    for db in [p for p in files if p.read_bytes()[:16] == b"SQLite format 3\x00"]:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                for row in conn.execute(f'SELECT * FROM "{table}"'):
                    for cell in row:
                        data = cell.encode() if isinstance(cell, str) else cell if isinstance(cell, bytes) else b""
                        try:
                            data = zlib.decompress(data)
                        except zlib.error:
                            pass
                        if needle in data:
                            found.append(f"{db} table {table}")
        finally:
            conn.close()
    return found


def test_probe_run_stores_and_shows_no_postgres_password(env, tmp_path):
    probe = _module(tmp_path / "probe_defs.py", PROBE_DEFS)
    with dg.DagsterInstance.get() as instance:
        result = probe.defs.resolve_job_def("postgres_probe").execute_in_process(instance=instance)
        assert result.success
        assert result.output_for_node("touch_postgres")  # the run connected through the URL
        run = instance.get_run_by_id(result.run_id)
        shown = [
            _repository_snapshot(probe.defs),
            str(run.run_config),
            str(run.tags),
            str(instance.get_job_snapshot(run.job_snapshot_id)),
        ]
        shown += [str(entry) for entry in instance.all_logs(run.run_id)]
        ui = _ui_resources(instance, tmp_path / "probe_defs.py")

    assert '"ExternalResourceConfigEnvVar", "name": "NBP_POSTGRES_URL"' in shown[0]  # Dagster keeps the reference ...
    assert ui["postgres"]["url"] == ("NBP_POSTGRES_URL", "ENV_VAR")  # ... and what the UI shows
    assert not [text for text in shown if env["secret"] in text]
    assert not [text for text in map(str, ui.values()) if env["secret"] in text]
    assert _files_holding(env["dagster_home"], env["secret"]) == []


def test_a_week_through_the_cli_stores_and_shows_no_postgres_password(env, tmp_path, capsys):
    main(["generate", "--customers", "300", "--weeks", "1"])
    main(["materialize"])
    assert ": succeeded in" in capsys.readouterr().out
    location = tmp_path / "location.py"
    location.write_text(FULL_LOCATION)
    with dg.DagsterInstance.get() as instance:
        ui = _ui_resources(instance, location)
        runs = instance.get_runs()
        assert len(runs) == 1
        shown = [str(runs[0].run_config), str(runs[0].tags), str(instance.get_job_snapshot(runs[0].job_snapshot_id))]
    assert ui["postgres"]["url"] == ("NBP_POSTGRES_URL", "ENV_VAR")
    assert not [text for text in [*shown, *map(str, ui.values())] if env["secret"] in text]
    # Every file of the instance: run and event-log databases, compute logs, snapshots.
    assert _files_holding(env["dagster_home"], env["secret"]) == []
