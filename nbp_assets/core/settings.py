"""Environment variables that configure a deployment.

NBP_DEPLOYMENT picks the deployment: `local` (default, nothing to configure) or
`production` (Snowflake warehouse, PostgreSQL server). docs/deployment.md explains each.

| variable                       | meaning                                                  | default            |
|--------------------------------|----------------------------------------------------------|--------------------|
| NBP_DEPLOYMENT                 | local or production                                      | local              |
| NBP_HOME                       | folder for local state (warehouse, PostgreSQL data)      | ./.nbp             |
| NBP_WAREHOUSE_PATH             | DuckDB file used as the local warehouse                  | $NBP_HOME/warehouse.duckdb |
| NBP_POSTGRES_URL               | PostgreSQL for nbp_current; unset = embedded server      | (embedded); required in production |
| NBP_DUCKDB_MEMORY_LIMIT        | local: DuckDB's memory limit; beyond it, it spills to disk | 1GB              |
| NBP_DUCKDB_THREADS             | local: DuckDB worker threads                             | the machine's cores |
| NBP_DUCKDB_PARTIES_PER_SHARD   | local: customers per pass of the signals and ranking steps | 1000000        |
| NBP_DUCKDB_TEMP_DIR            | local: where DuckDB spills                               | $NBP_HOME/duckdb_tmp |
| NBP_MAX_SNAPSHOT_AGE_DAYS      | oldest snapshot (days before the evaluation date) a week may use | 7      |
| NBP_WEIGHTS_FILE               | local: ranking weights CSV (product_class, signal, weight) | $NBP_HOME/weights.csv if present, else packaged default |
| NBP_FIRST_WEEK                 | the first week (a Monday) the UI offers and runs can use | $NBP_HOME/first_week if present (the demo writes it), else 2025-01-06 |
| NBP_WEIGHTS_TABLE              | production: Snowflake weights configuration table        | nbp_config.nbp_weights |
| NBP_ALERT_MAILDIR              | folder where alerts are filed as e-mails (a Maildir); `off` turns it off | local: $NBP_HOME/alerts/maildir; production: off |
| NBP_OPERATOR                   | who the alerts CLI records as acting, unless --by is given; who `simulate` and `approve` record | the login name |
| NBP_REQUIRE_APPROVAL           | true: a model_version without a recorded approval does not publish to nbp_current | production: true; local: false |
| SNOWFLAKE_ACCOUNT              | production: account identifier (e.g. xy12345.eu-west-2)  | required           |
| SNOWFLAKE_USER                 | production: service user                                 | required           |
| SNOWFLAKE_PASSWORD             | production: password (or a private key, not both)        |                    |
| SNOWFLAKE_PRIVATE_KEY          | production: PEM private key text (key-pair auth)         |                    |
| SNOWFLAKE_PRIVATE_KEY_PATH     | production: file holding the PEM private key             |                    |
| SNOWFLAKE_PRIVATE_KEY_PASSWORD | production: passphrase of an encrypted private key       | none               |
| SNOWFLAKE_ROLE                 | production: role to use                                  | the user's default role |
| SNOWFLAKE_WAREHOUSE            | production: virtual warehouse that runs the queries      | required           |
| SNOWFLAKE_DATABASE             | production: database holding nbp_source, nbp_work, product_intelligence, nbp_config | required |
| SNOWFLAKE_LOGIN_TIMEOUT        | production: seconds to wait for a Snowflake login        | 60                 |
| NBP_FAIRNESS_DIMENSIONS        | comma-separated customer columns the fairness rates are cut by | jurisdiction,age_band,segment |
| NBP_FAIRNESS_INTERSECTIONS     | comma-separated pairs of those columns judged as one dimension each, e.g. jurisdiction*age_band | none |
| NBP_FAIRNESS_MIN_GROUP         | groups with fewer active customers are listed, not judged | 30               |
| NBP_FAIRNESS_HISTORY_WEEKS     | weeks of gap history in the fairness report (this week included) | 8         |
| NBP_FAIRNESS_BLOCKS_PUBLISH    | true: a fairness breach stops nbp_current from publishing the week | false   |
| NBP_DRIFT_PSI_WARN             | model_drift: a signal's or the score's PSI above it is a warning (docs/monitoring.md) | 0.2 |
| NBP_OUTCOME_GAP_WARN_PP        | offer_outcomes: a clear acceptance gap between two groups of a dimension above it (pp) is a warning | 10 |
| NBP_CONTROL_GROUP_SHARE        | share of active customers held out of nbp_current (0 to 0.5; 0 = off) | 0          |
| NBP_CONTROL_GROUP_SALT         | salt of the hold-out's hash (a new salt draws a new group) | nbp-control-1     |
| NBP_ALERT_SMTP_*, NBP_ALERT_WEBHOOK_*, NBP_ALERT_SLACK_*, NBP_ALERT_TEAMS_WEBHOOK_URL, NBP_ALERT_RETRY_* | alert channels (PLAIN_VARIABLES, SECRET_VARIABLES below; docs/fairness.md) | off |
| DAGSTER_HOME                   | Dagster's instance folder (the CLI: $NBP_HOME/dagster_home) | Dagster's        |
| DAGSTER_POSTGRES_URL           | Dagster's own storage in PostgreSQL (deploy/dagster.yaml; `check` tests it) | unset |
| NBP_KAFKA_BOOTSTRAP_SERVERS    | offer stream: Kafka bootstrap servers (host:port,...); set = the Kafka path is on | unset |
| NBP_KAFKA_SECURITY_PROTOCOL    | offer stream: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL  | PLAINTEXT          |
| NBP_KAFKA_SASL_MECHANISM       | offer stream: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512       | PLAIN (with SASL)  |
| NBP_KAFKA_SASL_USERNAME        | offer stream: SASL user (e.g. a Confluent Cloud API key) |                    |
| NBP_KAFKA_SASL_PASSWORD        | offer stream: SASL password / API secret (never logged)  |                    |
| NBP_KAFKA_SSL_CA_LOCATION      | offer stream: CA bundle file for TLS                     | system CAs         |
| NBP_KAFKA_SSL_CERT_LOCATION    | offer stream: client certificate (mutual TLS)            |                    |
| NBP_KAFKA_SSL_KEY_LOCATION     | offer stream: client private key (mutual TLS)            |                    |
| NBP_KAFKA_SSL_KEY_PASSWORD     | offer stream: passphrase of the client key (never logged) |                   |
| NBP_KAFKA_TOPIC_PREFIX         | offer stream: prefix of every topic name (one cluster, several environments) | none |
| NBP_KAFKA_PARTITIONS           | offer stream: partitions of topics it creates (the recipe's 6) | 6            |
| NBP_KAFKA_REPLICATION          | offer stream: replication factor of topics it creates    | 1 (3 on a real cluster) |
| NBP_KAFKA_GROUP                | offer stream: consumer group of the processor            | nbp-next-best-offer |
| NBP_KAFKA_COMPRESSION          | offer stream: compression of what it produces: none, lz4, zstd, gzip, snappy | none |
| NBP_KAFKA_LINGER_MS            | offer stream: ms a producer waits to fill a batch (librdkafka's default) | 5 |
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from pathlib import Path

DEPLOYMENTS = ("local", "production")

SNOWFLAKE_REQUIRED = ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_DATABASE")
# Exactly one of these authenticates the service user.
SNOWFLAKE_CREDENTIALS = ("SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY", "SNOWFLAKE_PRIVATE_KEY_PATH")
PRODUCTION_REQUIRED = (*SNOWFLAKE_REQUIRED, "NBP_POSTGRES_URL")
DEFAULT_WEIGHTS_TABLE = "nbp_config.nbp_weights"

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*")


class ConfigurationError(ValueError):
    """The deployment is configured wrongly. The message names what is wrong and never
    contains a secret; nothing has been written when it is raised."""


def deployment(name: str | None = None) -> str:
    """The deployment to use: `name` if given, else NBP_DEPLOYMENT, else local."""
    name = name or os.environ.get("NBP_DEPLOYMENT") or "local"
    if name not in DEPLOYMENTS:
        raise ConfigurationError(f"unknown NBP_DEPLOYMENT {name!r}: expected one of {', '.join(DEPLOYMENTS)}")
    return name


def nbp_home() -> Path:
    return Path(os.environ.get("NBP_HOME", ".nbp")).resolve()


def warehouse_path() -> Path:
    return Path(os.environ.get("NBP_WAREHOUSE_PATH", nbp_home() / "warehouse.duckdb")).resolve()


def duckdb_memory_limit() -> str:
    return os.environ.get("NBP_DUCKDB_MEMORY_LIMIT") or "1GB"


def duckdb_threads() -> int:
    return int(os.environ.get("NBP_DUCKDB_THREADS") or os.cpu_count() or 1)


def duckdb_parties_per_shard() -> int:
    """The heavy weekly steps run over at most this many customers at a time: one shard's
    joins fit DuckDB's memory limit (1M customers used ~200 MiB of it), so a bank of any size
    runs in bounded memory, one shard after the other."""
    value = os.environ.get("NBP_DUCKDB_PARTIES_PER_SHARD") or "1000000"
    if not value.isdigit() or int(value) < 1:
        raise ConfigurationError(f"NBP_DUCKDB_PARTIES_PER_SHARD must be a whole number >= 1, got {value!r}")
    return int(value)


def duckdb_temp_dir() -> Path:
    return Path(os.environ.get("NBP_DUCKDB_TEMP_DIR") or nbp_home() / "duckdb_tmp")


def max_snapshot_age_days() -> int:
    """A snapshot input (eligibility, churn, ROTE, behaviour) older than this fails the week:
    7 by default, i.e. the snapshot must be from the week being evaluated."""
    value = os.environ.get("NBP_MAX_SNAPSHOT_AGE_DAYS") or "7"
    if not value.isdigit() or int(value) < 1:
        raise ConfigurationError(f"NBP_MAX_SNAPSHOT_AGE_DAYS must be a whole number of days >= 1, got {value!r}")
    return int(value)


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_URL_VARIABLE) or None


def postgres_data_dir() -> Path:
    return nbp_home() / "postgres"


def weights_file() -> Path | None:
    """The local weights CSV; None: the packaged default (model.weights.load_weights reads it)."""
    if os.environ.get("NBP_WEIGHTS_FILE"):
        return Path(os.environ["NBP_WEIGHTS_FILE"]).resolve()
    local = nbp_home() / "weights.csv"
    return local if local.exists() else None


_OFF = {"off", "none", "false", "0", "no"}


def alert_maildir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The local alert channel: the Maildir folder alerts are filed in as e-mails. On by
    default in the local deployment, so an alert reaches a person with no outside
    service; off by default in production (a shared host's disk is nobody's inbox)."""
    environ = os.environ if environ is None else environ
    raw = (environ.get("NBP_ALERT_MAILDIR") or "").strip()
    if raw.lower() in _OFF and raw:
        return None
    if raw:
        return Path(raw).resolve()
    if (environ.get("NBP_DEPLOYMENT") or "local") != "local":
        return None
    return Path(environ.get("NBP_HOME", ".nbp")).resolve() / "alerts" / "maildir"


def operator_name() -> str:
    """Who acts in the alerts workflow when the CLI is not told (--by): NBP_OPERATOR, else
    the login name. Recorded in the audit trail with each action."""
    return (os.environ.get("NBP_OPERATOR") or "").strip() or getpass.getuser()


DEFAULT_FIRST_WEEK = "2025-01-06"


def first_week_file() -> Path:
    """Where `demo` records the first week of the bank it generated, so the UI offers only
    the weeks that have data."""
    return nbp_home() / "first_week"


def first_week() -> str:
    """The first week that can be materialized (partition key, a Monday): NBP_FIRST_WEEK,
    else the week recorded in $NBP_HOME/first_week, else 2025-01-06."""
    from datetime import date

    source = "NBP_FIRST_WEEK"
    value = (os.environ.get("NBP_FIRST_WEEK") or "").strip()
    if not value and first_week_file().is_file():
        source, value = str(first_week_file()), first_week_file().read_text().strip()
    if not value:
        return DEFAULT_FIRST_WEEK
    try:
        monday = date.fromisoformat(value).weekday() == 0
    except ValueError:
        monday = False
    if not monday:
        raise ConfigurationError(f"{source} must be a Monday as YYYY-MM-DD (a week's partition key), got {value!r}")
    return value


def _set(name: str) -> bool:
    return bool(os.environ.get(name, "").strip())


def check_production_env() -> None:
    """Every production setting present and consistent, else one error listing all problems."""
    problems = []
    missing = [name for name in PRODUCTION_REQUIRED if not _set(name)]
    if missing:
        problems.append(f"missing environment variables: {', '.join(missing)}")
    credentials = [name for name in SNOWFLAKE_CREDENTIALS if _set(name)]
    if not credentials:
        problems.append(f"no Snowflake credential: set one of {', '.join(SNOWFLAKE_CREDENTIALS)}")
    elif len(credentials) > 1:
        problems.append(f"more than one Snowflake credential set ({', '.join(credentials)}): keep exactly one")
    if _set("SNOWFLAKE_PRIVATE_KEY_PATH") and not Path(os.environ["SNOWFLAKE_PRIVATE_KEY_PATH"]).is_file():
        problems.append(
            f"SNOWFLAKE_PRIVATE_KEY_PATH {os.environ['SNOWFLAKE_PRIVATE_KEY_PATH']!r} is not a readable file"
        )
    if _set("SNOWFLAKE_PRIVATE_KEY_PASSWORD") and not (
        _set("SNOWFLAKE_PRIVATE_KEY") or _set("SNOWFLAKE_PRIVATE_KEY_PATH")
    ):
        problems.append("SNOWFLAKE_PRIVATE_KEY_PASSWORD is set but there is no private key to decrypt")
    try:
        snowflake_login_timeout()
        weights_table()
    except ConfigurationError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigurationError("NBP_DEPLOYMENT=production is misconfigured:\n  - " + "\n  - ".join(problems))


def weights_table() -> str:
    """schema.table of the Snowflake weights configuration (product_class, signal, weight)."""
    name = os.environ.get("NBP_WEIGHTS_TABLE") or DEFAULT_WEIGHTS_TABLE
    if not _TABLE_NAME.fullmatch(name):  # it is inlined into SQL
        raise ConfigurationError(f"NBP_WEIGHTS_TABLE {name!r} is not of the form schema.table")
    return name


def snowflake_login_timeout() -> int:
    raw = os.environ.get("SNOWFLAKE_LOGIN_TIMEOUT") or "60"
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"SNOWFLAKE_LOGIN_TIMEOUT {raw!r} is not a whole number of seconds")
    return int(raw)


KAFKA_SECRET_VARIABLES = ("NBP_KAFKA_SASL_PASSWORD", "NBP_KAFKA_SSL_KEY_PASSWORD")
_KAFKA_VARIABLES = {  # environment variable -> librdkafka property
    "NBP_KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "NBP_KAFKA_SASL_MECHANISM": "sasl.mechanism",
    "NBP_KAFKA_SASL_USERNAME": "sasl.username",
    "NBP_KAFKA_SASL_PASSWORD": "sasl.password",
    "NBP_KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
    "NBP_KAFKA_SSL_CERT_LOCATION": "ssl.certificate.location",
    "NBP_KAFKA_SSL_KEY_LOCATION": "ssl.key.location",
    "NBP_KAFKA_SSL_KEY_PASSWORD": "ssl.key.password",
}


def kafka_bootstrap_servers() -> str | None:
    """The Kafka cluster of the offer stream; None when the bank uses the warehouse path only."""
    return os.environ.get("NBP_KAFKA_BOOTSTRAP_SERVERS", "").strip() or None


def kafka_client_properties() -> dict[str, str]:
    """Connection and security properties for every Kafka client, from NBP_KAFKA_* (secrets
    included: callers must never print the result; stream.config.KafkaSettings redacts)."""
    props = {prop: os.environ[name].strip() for name, prop in _KAFKA_VARIABLES.items() if _set(name)}
    protocol = props.get("security.protocol", "PLAINTEXT").upper()
    if protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ConfigurationError(
            f"NBP_KAFKA_SECURITY_PROTOCOL {protocol!r}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
        )
    if protocol.startswith("SASL"):
        props.setdefault("sasl.mechanism", "PLAIN")
        missing = [n for n in ("NBP_KAFKA_SASL_USERNAME", "NBP_KAFKA_SASL_PASSWORD") if not _set(n)]
        if missing:
            raise ConfigurationError(f"NBP_KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
    props["security.protocol"] = protocol
    return props


def kafka_topic_prefix() -> str:
    return os.environ.get("NBP_KAFKA_TOPIC_PREFIX", "").strip()


def _whole(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"{name} {raw!r} is not a whole number >= 1")
    return int(raw)


def kafka_partitions() -> int:
    return _whole("NBP_KAFKA_PARTITIONS", 6)


# The local tansu broker (`kafka broker`, the benchmark) serves the partitions of a fetch one
# by one: on one 2-core machine one partition gave the lowest latency (p99 ~22 ms where 2 gave
# 41-100 ms at 10,000 events/s; docs/next-best-offer.md). A real cluster keeps the recipe's 6.
KAFKA_LOCAL_PARTITIONS = 1


def kafka_replication() -> int:
    return _whole("NBP_KAFKA_REPLICATION", 1)


def kafka_group() -> str:
    return os.environ.get("NBP_KAFKA_GROUP", "").strip() or "nbp-next-best-offer"


def kafka_compression() -> str:
    raw = os.environ.get("NBP_KAFKA_COMPRESSION", "").strip().lower() or "none"
    if raw not in ("none", "lz4", "zstd", "gzip", "snappy"):
        raise ConfigurationError(f"NBP_KAFKA_COMPRESSION {raw!r}: expected none, lz4, zstd, gzip or snappy")
    return raw


def kafka_linger_ms() -> int:
    raw = os.environ.get("NBP_KAFKA_LINGER_MS", "").strip() or "5"
    if not raw.isdigit():
        raise ConfigurationError(f"NBP_KAFKA_LINGER_MS {raw!r} is not a whole number of milliseconds")
    return int(raw)


def kafka_max_message_bytes() -> int | None:
    """The largest record the offer stream's producer may send (NBP_KAFKA_MAX_MESSAGE_BYTES);
    None: follow the broker's limit (offers/stream/deadletter.py)."""
    raw = os.environ.get("NBP_KAFKA_MAX_MESSAGE_BYTES", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1_000 <= int(raw) <= 1_000_000_000:
        raise ConfigurationError(
            f"NBP_KAFKA_MAX_MESSAGE_BYTES {raw!r} is not a whole number of bytes from 1000 to 1000000000"
        )
    return int(raw)


# Fairness monitoring (defaults and the meaning of each value: fairness/config.py). None:
# not set. A bad value raises ValueError naming the variable, when the definitions load.
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _bounded(environ: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is outside {low}..{high}")
    return value


def env_flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw not in _TRUE | _FALSE:
        raise ValueError(f"{name}={raw!r}: expected true or false")
    return raw in _TRUE


def fairness_dimensions(environ: Mapping[str, str] | None = None) -> tuple[str, ...] | None:
    raw = _environ(environ).get("NBP_FAIRNESS_DIMENSIONS", "").strip()
    return tuple(d.strip() for d in raw.split(",") if d.strip()) if raw else None


def fairness_intersections(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """NBP_FAIRNESS_INTERSECTIONS as its comma-separated items (`a*b`); none when unset or blank."""
    raw = _environ(environ).get("NBP_FAIRNESS_INTERSECTIONS", "")
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def fairness_min_group(environ: Mapping[str, str] | None = None) -> int | None:
    return _bounded(_environ(environ), "NBP_FAIRNESS_MIN_GROUP", 1, 1_000_000)


def fairness_history_weeks(environ: Mapping[str, str] | None = None) -> int | None:
    return _bounded(_environ(environ), "NBP_FAIRNESS_HISTORY_WEEKS", 1, 104)


def fairness_blocks_publish(environ: Mapping[str, str] | None = None) -> bool:
    return env_flag(_environ(environ), "NBP_FAIRNESS_BLOCKS_PUBLISH")


DRIFT_PSI_WARN_DEFAULT = 0.2  # the usual "significant shift" of a PSI (0.1: moderate)


def drift_psi_warn(environ: Mapping[str, str] | None = None) -> float:
    """NBP_DRIFT_PSI_WARN: the population stability index above which a signal's or the
    score's distribution has drifted (model_drift's warning checks); a number in (0, 10]."""
    return _threshold(_environ(environ), "NBP_DRIFT_PSI_WARN", DRIFT_PSI_WARN_DEFAULT, 10.0)


OUTCOME_GAP_WARN_PP_DEFAULT = 10.0  # like the fairness rule's 10 percentage points


def outcome_gap_warn_pp(environ: Mapping[str, str] | None = None) -> float:
    """NBP_OUTCOME_GAP_WARN_PP: the acceptance gap, in percentage points, between two groups
    of a fairness dimension above which (and clear of noise) offer_outcomes' warning check
    fails; a number in (0, 100]."""
    return _threshold(_environ(environ), "NBP_OUTCOME_GAP_WARN_PP", OUTCOME_GAP_WARN_PP_DEFAULT, 100.0)


def _threshold(environ: Mapping[str, str], name: str, default: float, high: float) -> float:
    """A warning threshold: a number in (0, high], `default` when unset; anything else (text,
    NaN, inf, out of range) is one line naming the variable and the value."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= high:  # NaN, inf and the non-numbers fail here
        raise ConfigurationError(f"{name} must be a number > 0 and <= {high:g} (e.g. {default:g}), got {raw!r}")
    return value


# The control group (docs/apps.md, "Held-out customers"): a stable share of the active
# customers, chosen by md5(salt || ':' || party_id), is ranked but not published.
CONTROL_GROUP_MAX_SHARE = 0.5
DEFAULT_CONTROL_GROUP_SALT = "nbp-control-1"
_SALT = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def control_group_share(environ: Mapping[str, str] | None = None) -> float:
    """NBP_CONTROL_GROUP_SHARE: the share of active customers held out, 0 (off) to 0.5."""
    raw = _environ(environ).get("NBP_CONTROL_GROUP_SHARE", "").strip() or "0"
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= CONTROL_GROUP_MAX_SHARE:  # NaN and inf fail too
        raise ConfigurationError(
            f"NBP_CONTROL_GROUP_SHARE {raw!r} is not a number from 0 to {CONTROL_GROUP_MAX_SHARE:g} (0 = no control group)"
        )
    return value


def control_group_salt(environ: Mapping[str, str] | None = None) -> str:
    """NBP_CONTROL_GROUP_SALT: 1 to 64 letters, digits or _.:- (it is hashed in SQL)."""
    raw = _environ(environ).get("NBP_CONTROL_GROUP_SALT")
    if raw is None or raw == "":
        return DEFAULT_CONTROL_GROUP_SALT
    if not _SALT.fullmatch(raw):
        raise ConfigurationError(
            f"NBP_CONTROL_GROUP_SALT {raw!r} must be 1 to 64 letters, digits or _ . : - (no spaces)"
        )
    return raw


# Alert channels (alerts/resource.py): resource field -> environment variable. Secrets go
# to Dagster as dg.EnvVar references (their names), never as values.
SECRET_VARIABLES = {
    "smtp_password": "NBP_ALERT_SMTP_PASSWORD",
    "webhook_url": "NBP_ALERT_WEBHOOK_URL",
    "webhook_secret": "NBP_ALERT_WEBHOOK_SECRET",
    "slack_token": "NBP_ALERT_SLACK_TOKEN",
    "teams_webhook_url": "NBP_ALERT_TEAMS_WEBHOOK_URL",
}
PLAIN_VARIABLES = {
    "smtp_host": "NBP_ALERT_SMTP_HOST",
    "smtp_port": "NBP_ALERT_SMTP_PORT",
    "smtp_security": "NBP_ALERT_SMTP_SECURITY",
    "smtp_from": "NBP_ALERT_SMTP_FROM",
    "smtp_to": "NBP_ALERT_SMTP_TO",
    "smtp_user": "NBP_ALERT_SMTP_USER",
    "slack_channel": "NBP_ALERT_SLACK_CHANNEL",
    "slack_api_url": "NBP_ALERT_SLACK_API_URL",
    "retry_base_seconds": "NBP_ALERT_RETRY_BASE_SECONDS",
    "retry_max_seconds": "NBP_ALERT_RETRY_MAX_SECONDS",
}
CHANNEL_SWITCHES = (
    "NBP_ALERT_MAILDIR, NBP_ALERT_SMTP_HOST, NBP_ALERT_WEBHOOK_URL, NBP_ALERT_SLACK_TOKEN, NBP_ALERT_TEAMS_WEBHOOK_URL"
)


def alert_channel_settings(environ: Mapping[str, str] | None = None) -> tuple[dict, dict[str, str]]:
    """The alert channels' plain settings that are set (numbers parsed), and the secret
    ones that are set, as field -> variable name."""
    environ = _environ(environ)
    plain: dict = {field: environ[var] for field, var in PLAIN_VARIABLES.items() if environ.get(var)}
    for field, kind in (("smtp_port", int), ("retry_base_seconds", float), ("retry_max_seconds", float)):
        if field in plain:
            try:
                plain[field] = kind(plain[field])
            except ValueError:
                raise ValueError(f"{PLAIN_VARIABLES[field]}={plain[field]!r} is not a number") from None
    return plain, {field: var for field, var in SECRET_VARIABLES.items() if environ.get(var)}


# Snowflake (resources.py): SnowflakeResource field -> environment variable.
SNOWFLAKE_FIELDS = {
    "account": "SNOWFLAKE_ACCOUNT",
    "user": "SNOWFLAKE_USER",
    "password": "SNOWFLAKE_PASSWORD",
    "private_key": "SNOWFLAKE_PRIVATE_KEY",
    "private_key_path": "SNOWFLAKE_PRIVATE_KEY_PATH",
    "private_key_password": "SNOWFLAKE_PRIVATE_KEY_PASSWORD",
    "role": "SNOWFLAKE_ROLE",
    "warehouse": "SNOWFLAKE_WAREHOUSE",
    "database": "SNOWFLAKE_DATABASE",
}
POSTGRES_URL_VARIABLE = "NBP_POSTGRES_URL"


def snowflake_settings() -> dict[str, tuple[str, str]]:
    """The SNOWFLAKE_* variables that are set: field -> (variable name, value)."""
    return {field: (var, os.environ[var]) for field, var in SNOWFLAKE_FIELDS.items() if _set(var)}


# Dagster's own instance (read by Dagster itself too; here for the CLI and `check`).
def dagster_home() -> str | None:
    return os.environ.get("DAGSTER_HOME") or None


def use_dagster_home(home: str) -> None:
    """Point Dagster (this process and the runs it launches) at this instance folder."""
    os.environ["DAGSTER_HOME"] = home


def dagster_postgres_url() -> str:
    return os.environ.get("DAGSTER_POSTGRES_URL", "")


def require_approval(environ: Mapping[str, str] | None = None) -> bool:
    """NBP_REQUIRE_APPROVAL: whether nbp_current publishes only an approved model_version
    (docs/governance.md). Unset: on in production, off locally."""
    environ = _environ(environ)
    raw = environ.get("NBP_REQUIRE_APPROVAL", "").strip().lower()
    if not raw:
        return deployment(environ.get("NBP_DEPLOYMENT") or None) == "production"
    if raw not in _TRUE | _FALSE:
        raise ConfigurationError(
            f"NBP_REQUIRE_APPROVAL={raw!r}: expected true or false (unset: production true, local false)"
        )
    return raw in _TRUE
