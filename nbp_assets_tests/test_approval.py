"""Challengers with a trail and an approval (issue 22, point 4): every simulation is kept in
the warehouse; `approve` records who approved a challenger, refuses bad input with one line
and exit code 2 writing nothing; with NBP_REQUIRE_APPROVAL on, an unapproved model_version
does not publish to nbp_current."""

from __future__ import annotations

import hashlib
import json
import logging

import dagster as dg
import pandas as pd
import pytest

from nbp_assets.cli import failure_cause, main
from nbp_assets.contract.tables import MODEL_VERSIONS, MODEL_WEIGHTS, SIMULATIONS
from nbp_assets.core import settings
from nbp_assets.core.partitions import Week
from nbp_assets.core.sql import render
from nbp_assets.core.warehouse import SOURCE_SCHEMA
from nbp_assets.definitions import WEEKLY_JOB, build_definitions
from nbp_assets.publish import postgres as pg
from nbp_assets.simulation import trail
from nbp_assets.simulation.simulate import simulate_week
from nbp_assets.sources.synthetic import generate
from nbp_assets.weekly import registry
from nbp_assets.weekly.weights import DEFAULT_WEIGHTS_FILE, load_weights

pytestmark = pytest.mark.integration

WEEK = Week.from_key("2026-11-09")
LOG = logging.getLogger("test_approval")
PUBLISHED = ["customers", "eligibility", "signals", "scores", "nbp_ranked", "nbp_current"]


def run(defs, assets) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(WEEKLY_JOB).execute_in_process(
        partition_key=WEEK.key,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        asset_selection=[dg.AssetKey(a) for a in assets],
    )


@pytest.fixture
def live(tmp_path, monkeypatch, clean_postgres):
    """A local deployment (approval not required) whose week ran and was published."""
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NBP_POSTGRES_URL", clean_postgres)
    monkeypatch.setenv("NBP_OPERATOR", "validator.vera")
    monkeypatch.delenv("NBP_WEIGHTS_FILE", raising=False)
    monkeypatch.delenv("NBP_REQUIRE_APPROVAL", raising=False)
    monkeypatch.delenv("NBP_DEPLOYMENT", raising=False)
    defs = build_definitions()
    for name, df in generate(900, 11, end_week=WEEK.start, history_weeks=2).items():
        defs.resources["warehouse"].replace_table(f"{SOURCE_SCHEMA}.{name}", df)
    result = run(defs, PUBLISHED)
    assert result.success
    (mat,) = result.asset_materializations_for_node("nbp_current")
    assert str(mat.metadata["approval"].value).startswith("approval not required locally (NBP_REQUIRE_APPROVAL off)")
    return defs


def rows(defs, table) -> pd.DataFrame:
    warehouse = defs.resources["warehouse"]
    if not warehouse.table_exists(table.name):
        return pd.DataFrame()
    return warehouse.query(
        render("core", "select", columns="*", relation=table.name, order_by=", ".join(table.key)).text
    )


def registry_fingerprint(defs) -> str:
    return hashlib.sha256(
        "".join(rows(defs, t).to_csv(index=False) for t in (MODEL_VERSIONS, MODEL_WEIGHTS, SIMULATIONS)).encode()
    ).hexdigest()


def candidate(tmp_path) -> str:
    df = pd.read_csv(DEFAULT_WEIGHTS_FILE)
    gap = df["signal"] == "relationship_gap"
    df.loc[gap, "weight"] = df.loc[gap, "weight"] / 2
    path = tmp_path / "candidate.csv"
    df.to_csv(path, index=False)
    return str(path)


def test_every_simulation_is_kept_with_its_results_and_weights(live, tmp_path, capsys):
    path = candidate(tmp_path)
    main(["simulate", "--weights", path, "--week", WEEK.key])
    out = capsys.readouterr().out
    first = rows(live, SIMULATIONS)
    assert len(first) == 1
    sim = first.iloc[0]
    assert sim["simulation_id"] in out and trail.SIMULATION_ID.fullmatch(sim["simulation_id"])
    challenger = load_weights(path)
    assert sim["run_by"] == "validator.vera" and pd.Timestamp(sim["week_start"]).date() == WEEK.start
    assert sim["champion_model_version"] == load_weights().model_version
    assert sim["challenger_model_version"] == challenger.model_version
    assert challenger.model_version.endswith(sim["challenger_weights_digest"])
    assert sim["top3_changed"] > 0 and 0 < sim["top3_changed_share"] <= 1
    gaps = pd.DataFrame(json.loads(sim["fairness_gaps"]))
    assert {"gap_pp_live", "gap_pp_challenger", "breach_added", "breach_removed"} <= set(gaps.columns)
    assert sim["breaches_added"] == int(gaps["breach_added"].sum())
    assert "movement per product" in sim["report"]
    # the challenger's weights, joinable by its model_version, rebuild it
    assert (
        registry.weights_of(live.resources["warehouse"], challenger.model_version).model_version
        == sim["challenger_model_version"]
    )
    # a second simulation is kept beside the first (the sandbox is overwritten; this is not)
    simulate_week(live.resources["warehouse"], WEEK, challenger, load_weights(), LOG)
    assert len(rows(live, SIMULATIONS)) == 2


def refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_approve_records_who_when_why_and_refuses_bad_input_writing_nothing(live, tmp_path, capsys):
    warehouse = live.resources["warehouse"]
    challenger = load_weights(candidate(tmp_path))
    result = simulate_week(warehouse, WEEK, challenger, load_weights(), LOG)
    capsys.readouterr()
    before = registry_fingerprint(live)
    assert "--reason is empty" in refused(["approve", "--simulation", result.simulation_id, "--reason", "  "], capsys)
    assert "not a simulation id" in refused(["approve", "--simulation", "42", "--reason", "ok"], capsys)
    unknown = "sim-20260101-000000-deadbeef"
    assert "no such simulation" in refused(["approve", "--simulation", unknown, "--reason", "ok"], capsys)
    assert registry_fingerprint(live) == before

    main(["approve", "--simulation", result.simulation_id, "--reason", "CR-77: gap weight halved"])
    assert "approved by validator.vera" in capsys.readouterr().out
    row = registry.version_row(warehouse, challenger.model_version)
    assert row["approved_by"] == "validator.vera" and row["approval_reason"] == "CR-77: gap weight halved"
    assert row["approval_simulation_id"] == result.simulation_id and row["approved_at"] is not None
    # approved before it ranked a week: no week yet; the first week that uses it records it
    assert pd.isna(row["first_week"]) and pd.isna(row["sql_digest"])

    after = registry_fingerprint(live)
    again = refused(["approve", "--simulation", result.simulation_id, "--reason", "again"], capsys)
    assert "already approved" in again and result.simulation_id in again
    assert registry_fingerprint(live) == after


def test_required_approval_gates_the_publish(live, clean_postgres, monkeypatch, capsys):
    warehouse = live.resources["warehouse"]
    live_weights = load_weights()
    current = pg.read_current(clean_postgres).sort_values(["party_id", "rank"]).to_csv(index=False)

    monkeypatch.setenv("NBP_REQUIRE_APPROVAL", "maybe")
    with pytest.raises(settings.ConfigurationError, match="NBP_REQUIRE_APPROVAL='maybe'"):
        settings.require_approval()
    monkeypatch.setenv("NBP_REQUIRE_APPROVAL", "true")
    result = run(live, ["nbp_current"])
    assert not result.success
    message = failure_cause(result.failure_data_for_node("nbp_current"))
    assert live_weights.model_version in message and "no approval recorded" in message
    assert "python -m nbp_assets approve --simulation" in message
    assert pg.read_current(clean_postgres).sort_values(["party_id", "rank"]).to_csv(index=False) == current

    # the champion's own weights, simulated and approved, publish
    sim = simulate_week(warehouse, WEEK, live_weights, live_weights, LOG)
    main(["approve", "--simulation", sim.simulation_id, "--reason", "champion reviewed"])
    assert run(live, ["nbp_current"]).success
    party = pg.read_current(clean_postgres)["party_id"].iloc[0]
    capsys.readouterr()
    main(["show", party])
    shown = capsys.readouterr().out
    assert f"approval: {live_weights.model_version}: approved by validator.vera" in shown
    assert sim.simulation_id in shown


def test_production_requires_approval_by_default(monkeypatch):
    assert settings.require_approval({"NBP_DEPLOYMENT": "production"}) is True
    assert settings.require_approval({}) is False
    assert settings.require_approval({"NBP_DEPLOYMENT": "production", "NBP_REQUIRE_APPROVAL": "false"}) is False


def test_a_bad_require_approval_is_refused_by_check_in_one_line_writing_nothing(tmp_path):
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBP_", "SNOWFLAKE_", "DAGSTER_"))}
    env |= {"NBP_HOME": str(home), "NBP_REQUIRE_APPROVAL": "maybe", "NBP_FIRST_WEEK": "2025-01-06"}
    done = subprocess.run(
        [sys.executable, "-m", "nbp_assets", "check"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "NBP_REQUIRE_APPROVAL='maybe': expected true or false" in line
    assert not home.exists()
