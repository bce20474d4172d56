"""The CLI an operator uses: generate, backfill a range of weeks, materialize one week."""

from __future__ import annotations

import dagster as dg
import pytest

from nbp_assets.cli import main
from nbp_assets.storage import postgres as pg
from nbp_assets.storage.warehouse import HISTORY_TABLE, DuckDBWarehouse

pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path, monkeypatch, clean_postgres):
    """A fresh local deployment for the CLI: its own NBP_HOME (and Dagster instance), the test PostgreSQL."""
    home = tmp_path / "home"
    monkeypatch.setenv("NBP_HOME", str(home))
    monkeypatch.setenv("NBP_POSTGRES_URL", clean_postgres)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return home


def test_generate_then_backfill_two_weeks_oldest_first(home, clean_postgres, capsys):
    main(["generate", "--customers", "400", "--seed", "3", "--weeks", "2", "--end-week", "2026-11-09"])
    main(["backfill", "2026-11-02", "2026-11-09"])
    out = capsys.readouterr().out
    assert "week 2026-11-02: succeeded" in out and "week 2026-11-09: succeeded" in out

    weeks = DuckDBWarehouse(database=str(home / "warehouse.duckdb")).query(
        f"SELECT DISTINCT evaluated_at FROM {HISTORY_TABLE} ORDER BY 1"
    )["evaluated_at"]
    assert [str(w.date()) for w in weeks] == ["2026-11-09", "2026-11-16"]
    assert str(pg.current_evaluated_at(clean_postgres).date()) == "2026-11-16"

    # A customer's current top 3, as an app sees it, with names and each signal's part.
    party = pg.read_current(clean_postgres)["party_id"].iloc[0]
    capsys.readouterr()
    main(["show", party])
    shown = capsys.readouterr().out
    assert f"{party}: current week 2026-11-09" in shown and "1. PR" in shown
    assert "relationship_gap  signal" in shown and "-> contribution" in shown
    assert "suitability       signal" in shown and "-> penalty factor" in shown and "reason: \"" in shown

    # The runs are in the persistent instance the UI reads ($NBP_HOME/dagster_home).
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        parts = instance.get_materialized_partitions(dg.AssetKey("nbp_ranked"))
    assert parts == {"2026-11-02", "2026-11-09"}


def test_materialize_unknown_week_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit, match="not a week: partition key '2026-11-10' is not a Monday"):
        main(["materialize", "--week", "2026-11-10"])
    with pytest.raises(SystemExit, match="week 2024-12-30 is outside the weeks that can run"):
        main(["materialize", "--week", "2024-12-30"])


def test_a_data_error_prints_its_cause_without_a_traceback(home, capsys):
    main(["generate", "--customers", "200", "--seed", "3", "--weeks", "1", "--end-week", "2026-11-09"])
    DuckDBWarehouse(database=str(home / "warehouse.duckdb")).query(
        "UPDATE nbp_source.customers SET status = lower(status) WHERE party_id IN "
        "(SELECT party_id FROM nbp_source.customers ORDER BY party_id LIMIT 2) RETURNING party_id")
    with pytest.raises(SystemExit) as exit_:
        main(["materialize", "--week", "2026-11-09"])
    assert exit_.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "FAILED customers: table 'nbp_source.customers'" in err, err
    assert "status" in err and "active" in err  # the column and an example value
    assert "Traceback" not in err and "Error occurred while executing" not in err


def test_a_reversed_backfill_range_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit, match="backfill range is reversed: 2026-11-09 comes after 2026-11-02"):
        main(["backfill", "2026-11-09", "2026-11-02"])
