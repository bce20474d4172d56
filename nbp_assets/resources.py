"""Resources chosen by deployment (NBP_DEPLOYMENT), local by default.

- local: DuckDB file as the warehouse, PostgreSQL from NBP_POSTGRES_URL (an EnvVar
  reference, as in production) or an embedded server under $NBP_HOME/postgres, weights from
  a CSV. Nothing to install or start by hand.
- production: Snowflake as the warehouse (core/snowflake.py), the PostgreSQL server of
  NBP_POSTGRES_URL, weights from the Snowflake weights configuration table. Settings are
  dg.EnvVar references that Dagster resolves when a run starts, so the UI shows variable
  names, never values. Snowflake libraries are imported only when these are built.
  Loading the definitions does not log in to Snowflake: the weights table is read when a
  run starts (DeferredWeights), so the code location loads while Snowflake is down.

A production run checks, before its first step writes anything, that Snowflake accepts the
login, that every required upstream table is visible and that PostgreSQL answers.
`python -m nbp_assets check` runs the same checks (and the Dagster instance's) up front.
"""

from __future__ import annotations

import weakref
from urllib.parse import urlsplit

import dagster as dg

from nbp_assets.contract.inputs import SOURCE_TABLES
from nbp_assets.core import settings
from nbp_assets.core.postgres_resource import PostgresResource
from nbp_assets.core.redaction import redact
from nbp_assets.core.settings import ConfigurationError
from nbp_assets.core.warehouse import SOURCE_SCHEMA, DuckDBWarehouse, WarehouseResource
from nbp_assets.ops import dagster_compat
from nbp_assets.weekly.weights import MODEL_CODE_VERSION, Weights, load_weights, weights_from_frame

# Every run of this code location (CLI, UI, schedule) loads this module: a run whose step waits
# for the nbp_weekly pool slot then sleeps instead of spinning a core, and stops on Ctrl-C/SIGTERM.
dagster_compat.patch_pool_wait()

WEIGHTS_COLUMNS = ("product_class", "signal", "weight")


def required_source_tables() -> list[str]:
    return [f"{SOURCE_SCHEMA}.{name}" for name, (_, required) in SOURCE_TABLES.items() if required]


class ServerPostgres(PostgresResource):
    """The PostgreSQL server that serves nbp_current to the apps in production: a run does
    not start unless it answers, so a week is never half written for want of it."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        from nbp_assets.publish.postgres import check_connection

        check_connection(self.url)


def snowflake_warehouse(resolved: bool = False, **connection_args) -> WarehouseResource:
    """The Snowflake warehouse from SNOWFLAKE_* variables: as EnvVar references for the
    Definitions (resolved=False), or with their values for use outside a run (CLI, tests).
    connection_args go to snowflake.connector.connect as they are."""
    from dagster_snowflake import SnowflakeResource

    from nbp_assets.core.snowflake import SnowflakeWarehouse

    fields = {
        field: value if resolved else dg.EnvVar(var) for field, (var, value) in settings.snowflake_settings().items()
    }
    resource = SnowflakeResource(
        **fields,
        login_timeout=settings.snowflake_login_timeout(),
        additional_snowflake_connection_args=connection_args or None,
    )
    return SnowflakeWarehouse(snowflake=resource, required_tables=required_source_tables())


def build_resources(deployment: str | None = None) -> dict:
    deployment = settings.deployment(deployment)
    if deployment == "local":
        # NBP_POSTGRES_URL, when set, is passed as a reference too: its password must not reach
        # Dagster's run storage or the UI (unset: the embedded server, whose URL has no secret).
        url = dg.EnvVar(settings.POSTGRES_URL_VARIABLE) if settings.postgres_url() else None
        return {
            "warehouse": DuckDBWarehouse(database=str(settings.warehouse_path())),
            "postgres": PostgresResource(url=url, data_dir=str(settings.postgres_data_dir())),
        }
    settings.check_production_env()
    return {
        "warehouse": snowflake_warehouse(),
        "postgres": ServerPostgres(
            url=dg.EnvVar(settings.POSTGRES_URL_VARIABLE), data_dir=str(settings.postgres_data_dir())
        ),
    }


def open_warehouse(deployment: str | None = None) -> WarehouseResource:
    """The deployment's warehouse, ready to use outside a run (loading data, checks)."""
    if settings.deployment(deployment) == "local":
        return build_resources("local")["warehouse"]
    settings.check_production_env()
    return snowflake_warehouse(resolved=True)


def read_weights(warehouse: WarehouseResource, table: str) -> Weights:
    """The weights configuration table (product_class, signal, weight), validated."""
    if not warehouse.table_exists(table):
        raise ConfigurationError(
            f"weights configuration table {table} does not exist in {warehouse.describe()} (or this role cannot "
            f"see it): create it with columns {', '.join(WEIGHTS_COLUMNS)} or point NBP_WEIGHTS_TABLE at it"
        )
    missing = [c for c in WEIGHTS_COLUMNS if c not in warehouse.column_names(table)]
    if missing:
        raise ConfigurationError(f"weights configuration table {table} has no column(s) {', '.join(missing)}")
    frame = warehouse.query(f"SELECT {', '.join(WEIGHTS_COLUMNS)} FROM {table}")
    return weights_from_frame(frame, source=f"{warehouse.describe()}, table {table}")


def deployment_weights(deployment: str | None = None, deferred: bool = False) -> Weights:
    """The ranking weights in force: the CSV locally, the configuration table in production
    (deferred: read when a run starts, not now; for the definitions)."""
    if settings.deployment(deployment) == "local":
        return load_weights(settings.weights_file())
    if deferred:
        return DeferredWeights(settings.weights_table())  # type: ignore[return-value]  (reads as Weights)
    with open_warehouse("production").session() as warehouse:
        return read_weights(warehouse, settings.weights_table())


_DEFERRED: "weakref.WeakSet[DeferredWeights]" = weakref.WeakSet()


def _read_deferred_weights(warehouse: WarehouseResource) -> None:
    for weights in list(_DEFERRED):
        weights.read(warehouse)


class DeferredWeights:
    """The production ranking weights, read from the configuration table when a run starts
    (after its Snowflake login, with the same session) rather than when the definitions load.

    Until a run has read them, model_version and signals_version name the table instead of
    a digest of its content: the assets' code versions then stay the same when the weights
    change, and a change shows instead through ranking_weights' data version, which every
    run observes first. Within a run every step sees the weights the run read."""

    def __init__(self, table: str):
        from nbp_assets.core import snowflake

        self.table = table
        self._weights: Weights | None = None
        _DEFERRED.add(self)
        if _read_deferred_weights not in snowflake.RUN_START_HOOKS:
            snowflake.RUN_START_HOOKS.append(_read_deferred_weights)

    def read(self, warehouse: WarehouseResource) -> None:
        self._weights = read_weights(warehouse, self.table)

    def _read(self) -> Weights:
        if self._weights is None:  # asked for the weights themselves outside a run: read them now
            with open_warehouse("production").session() as warehouse:
                self.read(warehouse)
        return self._weights

    @property
    def model_version(self) -> str:
        return self._weights.model_version if self._weights else f"{MODEL_CODE_VERSION}+w@{self.table}"

    @property
    def signals_version(self) -> str:
        return self._weights.signals_version if self._weights else f"{MODEL_CODE_VERSION}+s@{self.table}"

    def __getattr__(self, name: str):  # matrix, source, has_suitability_rule, as_long
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._read(), name)


def check_deployment(deployment: str | None = None) -> list[str]:
    """Check a deployment's whole configuration without writing anything. Returns one line
    per verified item; raises ConfigurationError, PostgresUnavailable or (bad weights)
    ContractViolation, each naming what is wrong."""
    from nbp_assets.publish.postgres import check_connection

    deployment = settings.deployment(deployment)
    lines = [f"deployment: {deployment}", _control_group_line()]  # before any login
    lines.append(f"drift: PSI warning threshold {settings.drift_psi_warn():g} (NBP_DRIFT_PSI_WARN)")
    lines.append(
        f"outcomes: acceptance gap warning threshold {settings.outcome_gap_warn_pp():g} pp (NBP_OUTCOME_GAP_WARN_PP)"
    )
    gate = "on" if settings.require_approval() else "off"  # docs/governance.md; a bad value: one line, exit 2
    lines.append(f"approval gate (NBP_REQUIRE_APPROVAL): {gate}")
    warehouse = open_warehouse(deployment)
    if deployment == "production":
        with warehouse.session():
            warehouse.check_required_tables()
            lines.append(f"warehouse: {warehouse.describe()}, login ok, every required nbp_source table visible")
            weights = read_weights(warehouse, settings.weights_table())
    else:
        lines.append(f"warehouse: {warehouse.describe()}")
        weights = load_weights(settings.weights_file())
    lines.append(f"weights: {weights.source}, model_version {weights.model_version}")
    if url := settings.postgres_url():
        check_connection(url)
        lines.append(f"postgres (nbp_current): {PostgresResource(url=url, data_dir='').describe()} reachable")
    else:  # local only: production requires the URL
        lines.append(f"postgres (nbp_current): {build_resources('local')['postgres'].describe()}")
    lines.append(_check_dagster_instance())
    return lines


def _control_group_line() -> str:
    share, salt = settings.control_group_share(), settings.control_group_salt()  # a bad value names itself
    if share == 0:
        return "control group: off (NBP_CONTROL_GROUP_SHARE 0)"
    return f"control group: {share:g} of active customers held out of nbp_current (salt {salt!r})"


def _check_dagster_instance() -> str:
    from nbp_assets.publish.postgres import PostgresUnavailable, check_connection

    home = settings.dagster_home()
    if not home:
        return "dagster instance: DAGSTER_HOME not set (the CLI uses $NBP_HOME/dagster_home)"
    url = settings.dagster_postgres_url()
    if url:
        if not url.startswith("postgresql+psycopg2://"):
            # SQLAlchemy 2 maps postgresql:// to psycopg 3, on which Dagster's NOTIFY fails
            raise ConfigurationError("DAGSTER_POSTGRES_URL must start with postgresql+psycopg2://")
        try:  # first, directly: Dagster's own retries take a dozen seconds to say less
            check_connection("postgresql://" + url.removeprefix("postgresql+psycopg2://"))
        except PostgresUnavailable as exc:
            raise ConfigurationError(f"Dagster instance storage (DAGSTER_POSTGRES_URL): {exc}") from None
    try:
        with dg.DagsterInstance.get() as instance:
            instance.get_runs_count()
            storage = type(instance.run_storage).__name__
    except Exception as exc:  # a bad dagster.yaml, missing privileges
        message = " ".join(str(exc).split())[:500]
        message = redact(message, [urlsplit(url).password if url else None])
        raise ConfigurationError(f"Dagster instance in DAGSTER_HOME={home} cannot be opened: {message}") from None
    return f"dagster instance: {home} ({storage}) reachable"
