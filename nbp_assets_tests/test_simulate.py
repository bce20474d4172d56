"""Challenger simulation: a candidate weights file ranks a week into the sandbox and is
compared with the live week; the history and nbp_current stay byte-identical."""

from __future__ import annotations

import hashlib
import logging

import dagster as dg
import pandas as pd
import pytest

from nbp_assets.cli import main
from nbp_assets.core.partitions import Week
from nbp_assets.core.warehouse import HISTORY_TABLE, SOURCE_SCHEMA
from nbp_assets.definitions import WEEKLY_JOB, build_definitions
from nbp_assets.publish import postgres as pg
from nbp_assets.simulation.simulate import SANDBOX_RANKED, SIMULATE_JOB, simulate_week
from nbp_assets.sources.synthetic import generate
from nbp_assets.weekly.weights import DEFAULT_WEIGHTS_FILE, HEALTH_THRESHOLD, load_weights

pytestmark = pytest.mark.integration

WEEK = Week.from_key("2026-11-09")
LOG = logging.getLogger("test_simulate")


@pytest.fixture
def live(tmp_path, monkeypatch, clean_postgres):
    """A local deployment whose week has run live and been published to nbp_current."""
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NBP_POSTGRES_URL", clean_postgres)
    monkeypatch.delenv("NBP_WEIGHTS_FILE", raising=False)
    defs = build_definitions()
    warehouse = defs.resources["warehouse"]
    for name, df in generate(1200, 11, end_week=WEEK.start, history_weeks=2).items():
        warehouse.replace_table(f"{SOURCE_SCHEMA}.{name}", df)
    # without fairness_report: the simulation computes its own gaps, and the compliance outbox
    # (kept for the whole test session) is left to the fairness tests
    published = [dg.AssetKey(k) for k in ("customers", "eligibility", "signals", "scores", "nbp_ranked", "nbp_current")]
    result = defs.resolve_job_def(WEEKLY_JOB).execute_in_process(
        partition_key=WEEK.key, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, asset_selection=published
    )
    assert result.success
    return defs


def fingerprint(defs, postgres_url) -> tuple[str, str]:
    """sha256 of the whole history table and of nbp_current, row by row."""
    history = defs.resources["warehouse"].query(f"SELECT * FROM {HISTORY_TABLE} ORDER BY party_id, rank, evaluated_at")
    current = pg.read_current(postgres_url).sort_values(["party_id", "rank"])
    return tuple(hashlib.sha256(df.to_csv(index=False).encode()).hexdigest() for df in (history, current))


def candidate(tmp_path, change) -> str:
    df = pd.read_csv(DEFAULT_WEIGHTS_FILE)
    change(df)
    path = tmp_path / "candidate.csv"
    df.to_csv(path, index=False)
    return str(path)


def no_relationship_gap(df):
    """A candidate that stops using peers: relationship_gap's weight moves to spend_affinity."""
    gap = df["signal"] == "relationship_gap"
    for product_class, weight in df.loc[gap, ["product_class", "weight"]].values:
        df.loc[(df["product_class"] == product_class) & (df["signal"] == "spend_affinity"), "weight"] += weight
    df.loc[gap, "weight"] = 0.0


@pytest.mark.parametrize("recompute_signals", [False, True])
def test_the_same_weights_change_nothing(live, clean_postgres, recompute_signals):
    warehouse, weights = live.resources["warehouse"], load_weights()
    result = simulate_week(warehouse, WEEK, weights, weights, LOG, recompute_signals=recompute_signals)
    sandbox_signals = warehouse.query("SELECT count(*) AS n FROM nbp_sandbox.signals")["n"].item()
    live_signals = warehouse.query("SELECT count(*) AS n FROM nbp_work.signals")["n"].item()
    assert sandbox_signals == (live_signals if recompute_signals else 0)
    assert result.summary["customers"] > 0
    assert result.summary["top1_changed"] == result.summary["top3_changed"] == 0
    assert (result.products["top3_change"] == 0).all() and (result.products["top1_change"] == 0).all()
    assert result.summary["breaches_added"] == result.summary["breaches_removed"] == 0
    fair = result.fairness
    assert fair["gap_pp_live"].equals(fair["gap_pp_challenger"])


def test_a_challenger_is_ranked_into_the_sandbox_and_leaves_history_and_nbp_current_byte_identical(
    live, clean_postgres, tmp_path
):
    warehouse, weights = live.resources["warehouse"], load_weights()
    before = fingerprint(live, clean_postgres)
    challenger = load_weights(candidate(tmp_path, no_relationship_gap))
    result = simulate_week(warehouse, WEEK, challenger, weights, LOG)
    assert fingerprint(live, clean_postgres) == before
    s = result.summary
    assert 0 < s["top1_changed"] <= s["top3_changed"] <= s["customers"]
    assert s["top1_changed_share"] == round(s["top1_changed"] / s["customers"], 6)
    sandbox = warehouse.query(f"SELECT * FROM {SANDBOX_RANKED.name}")
    assert (sandbox["model_version"] == challenger.model_version).all()
    assert len(sandbox) == result.products["challenger_top3"].sum()
    assert result.products["live_top3"].sum() == warehouse.scalar(f"SELECT count(*) FROM {HISTORY_TABLE}")
    # breaches added / removed are exactly the dimension rows whose breach flag flipped
    fair = result.fairness
    assert (fair["breach_added"] == (fair["breach_challenger"] & ~fair["breach_live"])).all()
    assert {"eligibility_pp_live", "ranking_pp_challenger", "gap_ci_low_pp_challenger"} <= set(fair.columns)


def test_a_stricter_suitability_rule_recomputes_the_signals_in_the_sandbox(live, clean_postgres, tmp_path):
    warehouse, weights = live.resources["warehouse"], load_weights()
    before = fingerprint(live, clean_postgres)
    live_signals = warehouse.query("SELECT count(*) AS n FROM nbp_work.signals")["n"].item()

    def stricter(df):
        df.loc[(df["product_class"] == "CARD") & (df["signal"] == "suitability"), "weight"] = 1.0
        df.loc[df["signal"] == HEALTH_THRESHOLD, "weight"] = 0.60

    result = simulate_week(warehouse, WEEK, load_weights(candidate(tmp_path, stricter)), weights, LOG)
    assert fingerprint(live, clean_postgres) == before
    assert warehouse.query("SELECT count(*) AS n FROM nbp_work.signals")["n"].item() == live_signals
    sandbox_signals = warehouse.query("SELECT count(*) AS n FROM nbp_sandbox.signals")["n"].item()
    assert 0 < sandbox_signals < live_signals  # more pairs suppressed
    cards = result.products[
        result.products["product_id"].isin(
            warehouse.query("SELECT product_id FROM nbp_work.products WHERE product_class = 'CARD'")["product_id"]
        )
    ]
    assert (cards["top3_change"] <= 0).all() and cards["top3_change"].sum() < 0


def test_the_cli_and_the_ui_job_run_the_simulation(live, clean_postgres, tmp_path, capsys):
    path = candidate(tmp_path, no_relationship_gap)
    before = fingerprint(live, clean_postgres)
    main(["simulate", "--weights", path, "--week", WEEK.key])
    out = capsys.readouterr().out
    assert "top1_changed_share" in out and "movement per product" in out and "fairness gaps before and after" in out
    result = live.resolve_job_def(SIMULATE_JOB).execute_in_process(
        run_config={"ops": {"simulate_challenger": {"config": {"weights_file": path, "week": WEEK.key}}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    assert fingerprint(live, clean_postgres) == before


def test_a_week_that_has_not_run_live_is_refused(live):
    with pytest.raises(ValueError, match="materialize it first"):
        simulate_week(live.resources["warehouse"], Week.from_key("2026-11-02"), load_weights(), load_weights(), LOG)
