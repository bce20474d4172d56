"""The check gate: failures are visible in the UI and stop the write; the CLI loader is all-or-nothing."""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd
import pytest

from nbp_assets.contract.assets import NbpRankedAsset
from nbp_assets.weekly import checks, invariants


def ranked(**changes) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "party_id": ["P1", "P1", "P2"],
            "jurisdiction": ["GB", "GB", "IE"],
            "rank": pd.array([1, 2, 1], dtype="int32"),
            "product_id": ["A", "B", "A"],
            "score": [0.5, 0.25, 0.125],
            "primary_signal": ["idle_cash", "none", "regular_fx"],
            "model_version": "nbp-1.0+wabc",
            "evaluated_at": pd.Timestamp("2026-11-16"),
        }
    )
    for col, (row, value) in changes.items():
        df.at[row, col] = value
    return df


def test_contract_result_reports_failure_cases():
    result = checks.contract_result(NbpRankedAsset, ranked(score=(1, 1.5)), "nbp_ranked")
    assert result.passed is False
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert "score" in result.metadata["failure_cases"].value and "1.5" in result.metadata["failure_cases"].value
    assert checks.contract_result(NbpRankedAsset, ranked(), "nbp_ranked").passed


def offending(sql_of, frame: pd.DataFrame, *args, **frames) -> pd.DataFrame:
    """Run an invariant's SQL on in-memory DuckDB tables (as the warehouse runs it)."""
    con = duckdb.connect()
    con.register("ranked_in", frame)
    for name, extra in frames.items():
        con.register(name, extra)
    return con.sql(sql_of("ranked_in", *args)).df()


def test_invariants_find_the_offending_rows():
    eligible = pd.DataFrame({"party_id": ["P1", "P1"], "product_id": ["A", "B"]})
    assert offending(invariants.outside_eligibility, ranked(), "eligible_in", eligible_in=eligible)[
        "party_id"
    ].tolist() == ["P2"]
    assert offending(invariants.bad_ranks, ranked(rank=(1, 3)))["party_id"].tolist() == ["P1"]
    assert offending(invariants.bad_ranks, ranked(product_id=(1, "A")))["party_id"].tolist() == ["P1"]
    assert offending(invariants.bad_ranks, ranked(rank=(2, 2)))["party_id"].tolist() == ["P2"]  # starts at 2
    assert offending(invariants.bad_ranks, ranked(rank=(1, 1)))["party_id"].tolist() == ["P1"]  # rank 1 twice
    assert offending(invariants.bad_ranks, ranked()).empty
    con = duckdb.connect()
    con.register("ranked_in", ranked())
    con.register("eligible_in", eligible)
    assert con.sql(invariants.outside_eligibility_count("ranked_in", "eligible_in")).fetchall() == [(1,)]
    assert offending(invariants.bad_scores, ranked(score=(1, 0.75)))["rank"].tolist() == [2]  # rises with rank
    assert offending(invariants.bad_scores, ranked(score=(2, 0.1234567)))["party_id"].tolist() == ["P2"]
    assert offending(invariants.bad_scores, ranked(score=(0, 1.5)))["party_id"].tolist() == ["P1"]
    assert offending(invariants.bad_scores, ranked()).empty
    assert offending(invariants.wrong_model_version, ranked(model_version=(0, "other")), "nbp-1.0+wabc")[
        "rank"
    ].tolist() == [1]


def test_gate_records_results_then_stops_before_the_write():
    written = []

    @dg.asset(check_specs=[dg.AssetCheckSpec(checks.CONTRACT, asset="toy", blocking=True)])
    def toy():
        yield from checks.gate("toy", [checks.contract_result(NbpRankedAsset, ranked(rank=(0, 9)), "toy")])
        written.append(True)
        yield dg.MaterializeResult()

    @dg.asset(deps=[toy])
    def downstream():
        written.append("downstream")

    result = dg.materialize([toy, downstream], raise_on_error=False)
    assert not result.success
    assert written == []
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed is False and "rank" in evaluation.metadata["failure_cases"].value
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "nothing was written" in failure.event_specific_data.error.message


def test_cli_load_rejects_a_bad_folder_and_loads_nothing(tmp_path, monkeypatch, capsys):
    from nbp_assets.cli import main

    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "customers.csv").write_text(
        "party_id,jurisdiction,segment,age_band,gender,status,income,fico,valid_from,valid_to\n"
        "P1,GB,VIP,25-34,F,ACTIVE,1000,700,2025-01-01,\n"
    )
    with pytest.raises(SystemExit) as exit_:
        main(["load", str(folder)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "customers.csv" in err and "segment" in err and "VIP" in err
    assert "product_register" in err  # missing required files are listed too
    assert not (tmp_path / "home" / "warehouse.duckdb").exists()


def test_the_eligibility_gate_counted_per_party_shard_adds_up_and_names_the_rows():
    """The gate's count runs once per party shard at scale: the shards' counts add up to the
    week's, and a failure still shows the offending rows of the whole week."""
    from nbp_assets.core.sqltext import within
    from nbp_assets.core.warehouse import _DuckDBSession

    con = duckdb.connect()
    con.register("ranked_in", ranked(product_id=(1, "C")))  # P1's C and P2's A are not eligible
    con.register("eligible_in", pd.DataFrame({"party_id": ["P1", "P1"], "product_id": ["A", "B"]}))
    shards = ["party_id < 'P2'", "party_id >= 'P2'"]
    result = checks.query_result(
        _DuckDBSession(con),
        checks.ELIGIBILITY_GATE,
        invariants.outside_eligibility("ranked_in", "eligible_in"),
        "every product recommended is ELIGIBLE",
        [invariants.outside_eligibility_count(within("ranked_in", p), within("eligible_in", p)) for p in shards],
    )
    assert not result.passed and result.metadata["failing_rows"].value == 2
    assert "C" in result.metadata["examples"].value and "P2" in result.metadata["examples"].value
