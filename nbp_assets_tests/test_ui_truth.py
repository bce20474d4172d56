"""The UI tells the truth about the weeks: checked through the real webserver's GraphQL API
(what every page of the UI reads) and once through a real browser.

One small demo bank (2 weeks), run as an operator would: `demo` (the latest closed week),
then `materialize --week` of the older week, which must not replace the apps' newer week.
Then dagster-webserver is started on that NBP_HOME and DAGSTER_HOME.
"""

from __future__ import annotations

import contextlib
import html
import io
import re
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest

from nbp_assets.definitions import WEEKLY_JOB, build_definitions
from nbp_assets.weekly.weights import DEFAULT_WEIGHTS_FILE
from nbp_assets_tests.test_definitions import CARRY_THE_MODEL, PERSONAL_DATA
from nbp_assets_tests.test_webserver import running_webserver

pytestmark = pytest.mark.integration

FAIRNESS_CHECK = "fairness_gap_within_threshold"
# Debian's package (apt-get install -y chromium); the other names are the same browser elsewhere.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def demo(tmp_path_factory, postgres_url):
    """A demo bank of 2 weeks: the latest closed week by `demo`, then the older week by
    `materialize`. Returns (NBP_HOME, [older week, latest week], what the commands printed)."""
    from nbp_assets.cli import main

    tmp = tmp_path_factory.mktemp("ui_truth")
    home = tmp / "nbp_home"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS product_intelligence CASCADE")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBP_HOME", str(home))
        mp.setenv("NBP_POSTGRES_URL", postgres_url)
        mp.setenv("DAGSTER_HOME", str(home / "dagster_home"))
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            main(["demo", "--customers", "300", "--seed", "5", "--weeks", "2"])
            first = (home / "first_week").read_text().strip()
            main(["materialize", "--week", first])
        latest = (pd.Timestamp(first) + pd.Timedelta(days=7)).date().isoformat()
        yield home, [first, latest], printed.getvalue()


@pytest.fixture(scope="module")
def server(demo, tmp_path_factory):
    home, _, _ = demo
    with running_webserver(tmp_path_factory.mktemp("ui_server"), home, home / "dagster_home") as server:
        yield server


def node(server, name: str, fields: str, partition: str | None = None) -> dict:
    declared = ", $partition: String" if partition is not None else ""
    query = f"""query ($key: AssetKeyInput!{declared}) {{
      assetNodeOrError(assetKey: $key) {{ __typename ... on AssetNode {{ {fields} }} }} }}"""
    variables = {"key": {"path": [name]}} | ({"partition": partition} if partition is not None else {})
    found = server.graphql(query, variables)["assetNodeOrError"]
    assert found["__typename"] == "AssetNode", server.explain(f"{name}: {found}")
    return found


def test_demo_ends_with_the_weeks_summary(demo):
    _, (first, latest), printed = demo
    assert f"the UI offers weeks {first} to {latest}, the weeks of this bank" in printed
    assert f"week {latest}: succeeded" in printed and f"week {first}: succeeded" in printed
    # every check ran in both weeks and none blocked; the count comes from the weekly job
    checks = len(build_definitions().resolve_job_def(WEEKLY_JOB).asset_layer.asset_graph.asset_check_keys)
    counts = re.findall(r"  checks      : (\d+) passed, 0 blocking failed, (\d+) warning failed", printed)
    assert len(counts) == 2 and all(int(p) + int(w) == checks for p, w in counts), printed
    assert printed.count("  breaches    : ") == 2 and printed.count("  alerts      : ") == 2
    assert f"  nbp_current : published: first publish: week {latest}" in printed
    assert (
        f"  nbp_current : NOT published: skipped: week {first} is older than week {latest}, which the apps already see"
    ) in printed


def test_the_ui_offers_exactly_the_weeks_of_the_demo_bank(server, demo):
    _, weeks, _ = demo
    ranked = node(server, "nbp_ranked", "partitionKeys partitionStats { numMaterialized numPartitions numFailed }")
    assert ranked["partitionKeys"] == weeks  # not two years of weeks without data
    assert ranked["partitionStats"] == {"numMaterialized": 2, "numPartitions": 2, "numFailed": 0}


def test_nbp_current_latest_materialization_is_the_live_week(server, demo):
    _, (first, latest), _ = demo
    current = node(
        server,
        "nbp_current",
        """
        assetMaterializations(limit: 1) { partition }
        assetObservations(limit: 5) { partition metadataEntries {
            label ... on BoolMetadataEntry { boolValue } ... on TextMetadataEntry { text } } }
        partitionStats { numMaterialized numPartitions }""",
    )
    assert [m["partition"] for m in current["assetMaterializations"]] == [latest]
    # The older week's run is on record, as an observation the UI does not take for the live week.
    (observed,) = current["assetObservations"]
    entries = {e["label"]: e.get("boolValue", e.get("text")) for e in observed["metadataEntries"]}
    assert observed["partition"] == first
    assert entries["published"] is False
    assert entries["outcome"] == f"skipped: week {first} is older than week {latest}, which the apps already see"
    assert entries["current_week_before"] == latest  # weeks named by their partition key
    assert current["partitionStats"] == {"numMaterialized": 1, "numPartitions": 2}


def test_owners_and_tags_are_in_the_ui(server):
    nodes = server.graphql("""{ assetNodes { assetKey { path }
        owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } } tags { key value } } }""")[
        "assetNodes"
    ]
    owners = {"/".join(n["assetKey"]["path"]): [o.get("team") or o.get("email") for o in n["owners"]] for n in nodes}
    tags = {"/".join(n["assetKey"]["path"]): {t["key"]: t["value"] for t in n["tags"]} for n in nodes}
    assert [k for k, v in owners.items() if not v] == []
    assert owners["fairness_report"] == ["compliance", "data-platform"]
    assert {k for k, t in tags.items() if t.get("personal_data") == "yes"} == PERSONAL_DATA
    assert {k for k, t in tags.items() if t.get("personal_data") == "no"} == set(tags) - PERSONAL_DATA
    assert {k: t["model"] for k, t in tags.items() if "model" in t} == CARRY_THE_MODEL


def latest_fairness_check(server) -> dict:
    executions = server.graphql(
        """query ($key: AssetKeyInput!, $check: String!) {
        assetCheckExecutions(assetKey: $key, checkName: $check, limit: 1) {
          partition status evaluation { success partition description } } }""",
        {"key": {"path": ["fairness_report"]}, "check": FAIRNESS_CHECK},
    )
    (latest,) = executions["assetCheckExecutions"]
    return latest


def test_each_weeks_check_result_is_in_the_ui(server, demo):
    _, (first, _), _ = demo
    latest = latest_fairness_check(server)
    assert latest["partition"] == latest["evaluation"]["partition"] == first  # the older week ran last
    assert latest["status"] == ("SUCCEEDED" if latest["evaluation"]["success"] else "FAILED")


def chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return None


def page_text(browser: str, url: str, profile: Path, budget_ms: int) -> list[str]:
    """The page's visible text, line by line, after its scripts ran for `budget_ms` of virtual time."""
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = re.sub(r"<script.*?</script>|<style.*?</style>", "", done.stdout, flags=re.S)
    return [html.unescape(line.strip()) for line in re.sub(r"<[^>]+>", "\n", text).split("\n") if line.strip()]


@pytest.mark.skipif(chromium() is None, reason="no chromium binary on PATH (Debian: apt-get install -y chromium)")
def test_a_browser_finds_the_weeks_check_result_on_the_asset_page(server, demo, tmp_path):
    """Headless Chromium loads fairness_report's checks page, as a compliance officer would,
    and finds the fairness check's latest result and the week it is for."""
    _, (first, _), _ = demo
    expected = "Passed" if latest_fairness_check(server)["evaluation"]["success"] else "Failed"
    url = f"{server.url}/assets/fairness_report?view=checks&checkDetail={FAIRNESS_CHECK}"
    for budget_ms in (15_000, 30_000):  # the second try only if the page had not loaded its data yet
        lines = page_text(chromium(), url, tmp_path / f"profile-{budget_ms}", budget_ms)
        if "Evaluation result" in lines and "Partition" in lines:
            break
    assert "Evaluation result" in lines and "Partition" in lines, lines
    assert lines[lines.index("Evaluation result") + 1] == expected, lines
    assert lines[lines.index("Partition") + 1] == first, lines
    assert "This is a" in lines and lines[lines.index("This is a") + 1] == "non-blocking"


# Last: it changes the weights of the demo's home.
def test_a_weights_change_shows_every_asset_that_carries_the_model_stale(server, demo, monkeypatch):
    from nbp_assets.weekly.weights_asset import RANKING_WEIGHTS, build_ranking_weights

    home, (_, latest), _ = demo
    governed = ["scores", "nbp_ranked", "nbp_current", "fairness_report"]

    def stale() -> dict[str, tuple[str, list]]:
        out = {}
        for name in [*governed, "signals"]:
            found = node(
                server,
                name,
                "staleStatus(partition: $partition) staleCauses(partition: $partition) "
                "{ key { path } reason category }",
                latest,
            )
            out[name] = (found["staleStatus"], [(c["key"]["path"][0], c["reason"]) for c in found["staleCauses"]])
        return out

    assert stale() == {name: ("FRESH", []) for name in [*governed, "signals"]}

    weights = pd.read_csv(DEFAULT_WEIGHTS_FILE)
    weights.loc[(weights["product_class"] == "CARD") & (weights["signal"] == "cooling_off"), "weight"] = 0.80
    weights.to_csv(home / "weights.csv", index=False)
    monkeypatch.setenv("NBP_HOME", str(home))
    source = build_ranking_weights()
    observe = dg.Definitions(assets=[source], jobs=[dg.define_asset_job("observe", selection=[source.key])])
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:  # as "Observe sources" in the UI
        assert observe.resolve_job_def("observe").execute_in_process(instance=instance).success

    assert stale() == {name: ("STALE", [(RANKING_WEIGHTS, "has a new data version")]) for name in governed} | {
        "signals": ("FRESH", [])
    }  # the signals do not depend on the weights
