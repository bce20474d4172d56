"""The model registry (issue 22): every history row is tied, in the warehouse, to the
configuration that produced it; a week can be reconstructed without the Dagster instance;
every simulation is kept; an approval is recorded and, where required, gates the publish."""

from __future__ import annotations

import shutil

import dagster as dg
import pandas as pd
import pytest

from nbp_assets.core.partitions import Week
from nbp_assets.core.sql import render
from nbp_assets.core.warehouse import SOURCE_SCHEMA
from nbp_assets.definitions import WEEKLY_JOB, build_definitions
from nbp_assets.sources.synthetic import generate
from nbp_assets.weekly import registry, steps
from nbp_assets.weekly.io import week_slice
from nbp_assets.weekly.weights import load_weights

pytestmark = pytest.mark.integration

WEEK = Week.from_key("2026-11-09")
PREVIOUS = Week.from_key("2026-11-02")
ENGINE = ["customers", "eligibility", "signals", "scores", "nbp_ranked"]


@pytest.fixture
def bank(tmp_path, monkeypatch, clean_postgres):
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NBP_POSTGRES_URL", clean_postgres)
    monkeypatch.delenv("NBP_WEIGHTS_FILE", raising=False)
    monkeypatch.delenv("NBP_REQUIRE_APPROVAL", raising=False)
    defs = build_definitions()
    warehouse = defs.resources["warehouse"]
    for name, df in generate(900, 11, end_week=WEEK.start, history_weeks=2).items():
        warehouse.replace_table(f"{SOURCE_SCHEMA}.{name}", df)
    return defs


def run(defs, week: Week, assets, instance=None) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(WEEKLY_JOB).execute_in_process(
        partition_key=week.key,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        asset_selection=[dg.AssetKey(a) for a in assets],
    )


def test_a_week_is_tied_to_its_configuration_and_rebuilt_without_dagster(bank, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert run(bank, PREVIOUS, ENGINE, instance).success
        assert run(bank, WEEK, ENGINE, instance).success
    live = load_weights()
    warehouse = bank.resources["warehouse"]

    # the registry row: code version, weights digest, SQL digest, first / last week and run
    row = registry.version_row(warehouse, live.model_version)
    assert row["code_version"] == "nbp-1.0" and live.model_version.endswith(row["weights_digest"])
    assert row["sql_digest"] == row["last_sql_digest"] == registry.model_sql_digest(live, "duckdb")
    assert pd.Timestamp(row["first_week"]).date() == PREVIOUS.start
    assert pd.Timestamp(row["last_week"]).date() == WEEK.start
    assert row["first_run_at"] <= row["last_run_at"]
    assert row["approved_by"] is None or pd.isna(row["approved_by"])
    # every history row joins to it
    assert registry.unjoined_history_rows(warehouse) == 0
    # every weight and suitability rule is there, as the weights' long format
    recorded = registry.weights_rows(warehouse, live.model_version)
    expected = live.as_long().sort_values(["product_class", "signal"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(recorded, expected[["product_class", "signal", "weight"]], check_dtype=False)

    # lose the Dagster instance: the warehouse alone gives the configuration and the scores
    shutil.rmtree(home)
    rebuilt = registry.weights_of(warehouse, live.model_version)
    assert rebuilt.model_version == live.model_version
    pd.testing.assert_frame_equal(rebuilt.matrix, live.matrix)
    assert registry.model_sql_digest(rebuilt, "duckdb") == row["sql_digest"]
    (recompute,) = steps.scores(WEEK, rebuilt, [None]).writes[0].selects
    again = warehouse.query(recompute).sort_values(["party_id", "product_id"]).reset_index(drop=True)
    stored = warehouse.query(render("core", "select", columns="*", relation=week_slice(steps.SCORES, WEEK)).text)
    stored = stored.drop(columns="week_start").sort_values(["party_id", "product_id"]).reset_index(drop=True)
    assert len(again) == len(stored) > 0
    pd.testing.assert_frame_equal(again[stored.columns], stored, check_dtype=False, check_exact=True)
    # and the history's scores are those recomputed, row for row
    ranked = warehouse.query(render("core", "select", columns="*", relation=week_slice(steps.HISTORY, WEEK)).text)
    both = ranked.merge(again, on=["party_id", "product_id"], suffixes=("", "_again"))
    assert len(both) == len(ranked) > 0
    assert (both["score"].astype(float) == both["score_again"]).all()


def test_a_rolled_back_week_leaves_no_registry_row(bank, monkeypatch):
    """The registry row is written in the week's transaction: a failed week writes none."""
    import nbp_assets.weekly.assets as engine

    def boom(*args, **kwargs):
        raise RuntimeError("the week fails after its checks")

    assert run(bank, WEEK, ENGINE[:-1]).success
    monkeypatch.setattr(engine.registry, "model_sql_digest", boom)
    assert not run(bank, WEEK, ["nbp_ranked"]).success
    warehouse = bank.resources["warehouse"]
    assert registry.version_row(warehouse, load_weights().model_version) is None
