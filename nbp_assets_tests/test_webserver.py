"""The real Dagster webserver loads the nbp_assets code location from workspace.yaml.

One dagster-webserver for the module, started from the repository root in its own process
group (started in the background it ignores SIGINT/SIGTERM sent to the leader alone), with
NBP_HOME and DAGSTER_HOME in tmp dirs. The UI's GraphQL API must show the location loaded
without error, the eight assets with their descriptions and checks, and the weekly schedule.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import dagster as dg
import pytest

from nbp_assets.weekly.weights import DEFAULT_WEIGHTS_FILE, load_weights
from nbp_assets_tests.test_definitions import ASSETS, CHECKS, MODEL_VERSIONED, OFFER_ASSETS, WEIGHTS_SOURCE

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCATION = "nbp_assets"
STARTUP_TIMEOUT_S = 90
# One snapshot of what the code location must contain, shared with the definitions tests.
REQUIRED_CHECKS = CHECKS
QUERY = """
query NbpLocation {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name } }
          ... on PythonError { message stack errorChain { error { message stack } } }
        }
      }
    }
    ... on PythonError { message stack }
  }
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        jobs { name }
        schedules { name cronSchedule executionTimezone defaultStatus pipelineName }
      }
    }
    ... on PythonError { message stack }
  }
  assetNodes {
    assetKey { path }
    description
    groupName
    isPartitioned
    isObservable
    isMaterializable
    opVersion
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name blocking } }
      ... on AssetCheckNeedsMigrationError { message }
      ... on AssetCheckNeedsUserCodeUpgrade { message }
      ... on AssetCheckNeedsAgentUpgradeError { message }
    }
  }
}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def webserver_executable() -> Path:
    for candidate in (
        REPO_ROOT / ".venv" / "bin" / "dagster-webserver",
        Path(sys.executable).with_name("dagster-webserver"),
    ):
        if candidate.exists():
            return candidate
    pytest.fail("dagster-webserver is not installed next to this Python")


@dataclass
class Webserver:
    url: str
    proc: subprocess.Popen
    stderr_path: Path
    startup_seconds: float = 0.0

    def stderr_tail(self, chars: int = 4000) -> str:
        text = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return text[-chars:]

    def explain(self, what: str) -> str:
        return f"{what}\n--- dagster-webserver stderr (tail) ---\n{self.stderr_tail()}"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as exc:  # GraphQL errors come back as 400 with a JSON body
            pytest.fail(self.explain(f"/graphql answered HTTP {exc.code}: {exc.read().decode(errors='replace')}"))
        assert not payload.get("errors"), self.explain(f"GraphQL errors: {payload['errors']}")
        return payload["data"]


def _group_gone(proc: subprocess.Popen, pgid: int, grace: float) -> bool:
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader, or its zombie keeps the group alive
        try:
            os.killpg(pgid, 0)  # anyone left in the group?
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (webserver and its code server), then SIGKILL."""
    pgid = proc.pid  # start_new_session=True: the leader's pid is the group id
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        if _group_gone(proc, pgid, grace):
            break
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


@contextlib.contextmanager
def running_webserver(tmp: Path, nbp_home: Path, dagster_home: Path) -> Iterator[Webserver]:
    """dagster-webserver on workspace.yaml with this NBP_HOME and DAGSTER_HOME (no other
    NBP_* variable), ready and with its code location loaded; stopped on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBP_")}
    env.update(NBP_HOME=str(nbp_home), DAGSTER_HOME=str(dagster_home), PYTHONUNBUFFERED="1")

    port = free_port()
    stdout_path, stderr_path = tmp / "webserver.out", tmp / "webserver.err"
    started = time.monotonic()
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [str(webserver_executable()), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group, killed as a whole below
        )
    server = Webserver(url=f"http://127.0.0.1:{port}", proc=proc, stderr_path=stderr_path)
    try:
        deadline = started + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(server.explain(f"dagster-webserver exited with code {proc.returncode} while starting"))
            try:
                with urllib.request.urlopen(f"{server.url}/server_info", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(server.explain(f"/server_info did not answer within {STARTUP_TIMEOUT_S} s"))
            time.sleep(0.5)
        # The location may still be loading when the HTTP server is already up.
        while True:
            entries = server.graphql(
                "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
            )
            statuses = {e["name"]: e["loadStatus"] for e in entries["workspaceOrError"].get("locationEntries", [])}
            if statuses and "LOADING" not in statuses.values():
                break
            if time.monotonic() > deadline:
                pytest.fail(server.explain(f"code locations still loading after {STARTUP_TIMEOUT_S} s: {statuses}"))
            time.sleep(0.5)
        server.startup_seconds = time.monotonic() - started
        yield server
    finally:
        stop_process_group(proc)


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webserver")
    nbp_home, dagster_home = tmp / "nbp_home", tmp / "dagster_home"
    nbp_home.mkdir()
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("")
    with running_webserver(tmp, nbp_home, dagster_home) as server:
        yield server


@pytest.fixture(scope="module")
def ui(webserver) -> dict:
    """What the UI sees of the workspace, from one GraphQL query."""
    return webserver.graphql(QUERY)


def test_server_info_is_this_dagster(webserver):
    with urllib.request.urlopen(f"{webserver.url}/server_info", timeout=10) as response:
        info = json.load(response)
    assert info["dagster_webserver_version"] == dg.__version__, webserver.explain(str(info))
    assert info["dagster_version"] == dg.__version__
    print(f"dagster-webserver ready after {webserver.startup_seconds:.1f} s")


def test_code_location_loaded_without_error(webserver, ui):
    workspace = ui["workspaceOrError"]
    assert workspace["__typename"] == "Workspace", webserver.explain(f"workspace error: {workspace}")
    entries = {e["name"]: e for e in workspace["locationEntries"]}
    assert set(entries) == {LOCATION}, webserver.explain(f"locations: {sorted(entries)}")
    entry = entries[LOCATION]
    location = entry["locationOrLoadError"]
    assert location is not None, webserver.explain(f"no location and no error: {entry}")
    if location["__typename"] == "PythonError":
        chain = [location] + [link["error"] for link in location["errorChain"]]
        pytest.fail(
            webserver.explain(
                f"code location {LOCATION} failed to load:\n"
                + "\n".join(f"{e['message']}{''.join(e['stack'])}" for e in reversed(chain))
            )
        )
    assert location["__typename"] == "RepositoryLocation"
    assert entry["loadStatus"] == "LOADED"
    assert [r["name"] for r in location["repositories"]] == ["__repository__"]

    repos = ui["repositoriesOrError"]
    assert repos["__typename"] == "RepositoryConnection", webserver.explain(f"repositories error: {repos}")
    assert [r["location"]["name"] for r in repos["nodes"]] == [LOCATION]


def asset_nodes(ui) -> dict[str, dict]:
    return {"/".join(n["assetKey"]["path"]): n for n in ui["assetNodes"]}


def test_all_assets_are_in_the_ui(webserver, ui):
    expected = ASSETS | OFFER_ASSETS | {WEIGHTS_SOURCE}
    assert set(asset_nodes(ui)) == expected, webserver.explain(f"asset nodes: {sorted(asset_nodes(ui))}")


def test_assets_are_described_grouped_and_partitioned(ui):
    nodes = asset_nodes(ui)
    undescribed = sorted(k for k, n in nodes.items() if not (n["description"] or "").strip())
    assert undescribed == []
    assert {k: n["groupName"] for k, n in nodes.items()} == (
        dict.fromkeys(ASSETS | {WEIGHTS_SOURCE}, "next_best_product") | dict.fromkeys(OFFER_ASSETS, "next_best_offer")
    )
    assert {k: n["isPartitioned"] for k, n in nodes.items()} == (
        dict.fromkeys(ASSETS, True) | dict.fromkeys(OFFER_ASSETS | {WEIGHTS_SOURCE}, False)
    )
    assert nodes[WEIGHTS_SOURCE]["isObservable"] and not nodes[WEIGHTS_SOURCE]["isMaterializable"]


def test_asset_checks_are_in_the_ui(webserver, ui):
    nodes = asset_nodes(ui)
    for name, required in sorted(REQUIRED_CHECKS.items()):
        result = nodes[name]["assetChecksOrError"]
        assert result["__typename"] == "AssetChecks", webserver.explain(f"{name}: {result}")
        shown = {c["name"]: c["blocking"] for c in result["checks"]}
        assert {c: shown.get(c) for c in required} == required, f"{name}: UI shows {shown}"


def test_model_version_is_the_code_version_in_the_ui(ui):
    model_version = load_weights(DEFAULT_WEIGHTS_FILE).model_version  # NBP_HOME has no weights.csv
    shown = {k: n["opVersion"] for k, n in asset_nodes(ui).items() if k in MODEL_VERSIONED}
    assert shown == dict.fromkeys(MODEL_VERSIONED, model_version)


def test_weekly_schedule_is_in_the_ui(ui):
    (repo,) = ui["repositoriesOrError"]["nodes"]
    schedules = {s["name"]: s for s in repo["schedules"]}
    assert "nbp_weekly_schedule" in schedules, f"schedules: {sorted(schedules)}"
    assert schedules["nbp_weekly_schedule"] == {
        "name": "nbp_weekly_schedule",
        "cronSchedule": "0 6 * * 1",
        "executionTimezone": "Europe/London",
        "defaultStatus": "RUNNING",
        "pipelineName": "nbp_weekly_job",
    }
    assert "nbp_weekly_job" in {j["name"] for j in repo["jobs"]}
