"""The CLI an operator uses: generate, backfill a range of weeks, materialize one week."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest

from nbp_assets.cli import main
from nbp_assets.core.warehouse import HISTORY_TABLE, DuckDBWarehouse
from nbp_assets.publish import postgres as pg

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
    # Each week ends with its summary: checks, breaches, alerts, and what the apps got.
    # every check ran in both weeks; only warnings (fairness, drift between two small weeks) failed
    counts = re.findall(r"  checks      : (\d+) passed, 0 blocking failed, (\d+) warning failed", out)
    assert len(counts) == 2 and all(int(p) + int(w) == _weekly_checks() for p, w in counts), out
    assert out.count("  breaches    : ") == 2 and out.count("  alerts      : ") == 2
    assert "  nbp_current : published: first publish: week 2026-11-02" in out
    assert "  nbp_current : published: replaced week 2026-11-02 with week 2026-11-09" in out
    assert "backfill 2026-11-02 to 2026-11-09: 2 of 2 week(s) succeeded" in out

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
    assert "suitability       signal" in shown and "-> penalty factor" in shown and 'reason: "' in shown

    # Re-running the older week does not change what the apps see, and says so.
    main(["materialize", "--week", "2026-11-02"])
    out = capsys.readouterr().out
    assert (
        "  nbp_current : NOT published: skipped: week 2026-11-02 is older than week 2026-11-09, "
        "which the apps already see"
    ) in out, out
    assert str(pg.current_evaluated_at(clean_postgres).date()) == "2026-11-16"

    # The runs are in the persistent instance the UI reads ($NBP_HOME/dagster_home) ...
    current = dg.AssetKey("nbp_current")
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        parts = instance.get_materialized_partitions(dg.AssetKey("nbp_ranked"))
        # ... where nbp_current's latest materialization is the live week: the skipped
        # re-run of the older week is an observation, not a materialization.
        latest = instance.get_latest_materialization_event(current)
        observed = instance.fetch_observations(current, limit=5).records
    assert parts == {"2026-11-02", "2026-11-09"}
    assert latest.dagster_event.partition == "2026-11-09"
    assert [(o.partition_key, o.asset_observation.metadata["published"].value) for o in observed] == [
        ("2026-11-02", False)
    ]


def test_materialize_unknown_week_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit, match="not a week: partition key '2026-11-10' is not a Monday") as refused:
        main(["materialize", "--week", "2026-11-10"])
    assert refused.value.code == 2  # refused before anything ran
    with pytest.raises(SystemExit, match="week 2024-12-30 is outside the weeks that can run"):
        main(["materialize", "--week", "2024-12-30"])


def _weekly_checks() -> int:
    """The weekly job's checks, counted from its definition (the summary counts the same)."""
    from nbp_assets.definitions import WEEKLY_JOB, build_definitions

    return len(build_definitions().resolve_job_def(WEEKLY_JOB).asset_layer.asset_graph.asset_check_keys)


def test_a_data_error_prints_its_cause_without_a_traceback(home, capsys):
    main(["generate", "--customers", "200", "--seed", "3", "--weeks", "1", "--end-week", "2026-11-09"])
    DuckDBWarehouse(database=str(home / "warehouse.duckdb")).query(
        "UPDATE nbp_source.customers SET status = lower(status) WHERE party_id IN "
        "(SELECT party_id FROM nbp_source.customers ORDER BY party_id LIMIT 2) RETURNING party_id"
    )
    with pytest.raises(SystemExit) as exit_:
        main(["materialize", "--week", "2026-11-09"])
    assert exit_.value.code == 1  # a week failed
    out, err = capsys.readouterr()
    assert "week 2026-11-09: FAILED" in out
    # activity's contract passed; customers failed on its input, so no check of it or below ran
    not_run = _weekly_checks() - 1
    assert (
        f"checks      : 1 passed, 0 blocking failed, 0 warning failed, {not_run} not run (their step did not run)"
        in out
    )
    assert "failed step : customers (its cause is printed above: FAILED customers)" in out
    assert "nbp_current : NOT published: did not run: an upstream step failed" in out
    assert "FAILED customers: table 'nbp_source.customers'" in err, err
    assert "status" in err and "active" in err  # the column and an example value
    assert "Traceback" not in err and "Error occurred while executing" not in err


def test_a_reversed_backfill_range_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit, match="backfill range is reversed: 2026-11-09 comes after 2026-11-02") as refused:
        main(["backfill", "2026-11-09", "2026-11-02"])
    assert refused.value.code == 2


def test_every_command_and_option_has_help_with_its_default(capsys):
    """`--help` of every command describes every argument and says its default (or that it has none)."""
    import argparse

    from nbp_assets import cli

    parsers = {}
    real_parse = argparse.ArgumentParser.parse_args

    def capture(parser, args=None, namespace=None):  # the built parser, without running a command
        parsers["main"] = parser
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = capture
    try:
        with pytest.raises(SystemExit):
            cli.main(["--help"])
    finally:
        argparse.ArgumentParser.parse_args = real_parse
    sub = next(a for a in parsers["main"]._actions if isinstance(a, argparse._SubParsersAction))
    described = {c.dest for c in sub._choices_actions if c.help}
    assert described == set(sub.choices), f"commands without help: {set(sub.choices) - described}"
    missing = []

    def walk(path: str, parser: argparse.ArgumentParser) -> None:  # commands of commands too (alerts ack, kafka sink)
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                described = {c.dest for c in action._choices_actions if c.help}
                missing.extend(f"{path} {name} (no help)" for name in action.choices if name not in described)
                for name, child in action.choices.items():
                    walk(f"{path} {name}", child)
            elif not action.help or "default" not in action.help:
                missing.append(f"{path} {action.option_strings or action.dest}")

    for name, parser in sub.choices.items():
        walk(name, parser)
    assert missing == []


def test_postgres_prints_how_apps_connect_and_holds_the_embedded_server(tmp_path):
    """`postgres` starts the embedded server, says how to connect (owner, read-only app role)
    and keeps it listening until Ctrl-C: the printed app URL works, and only for reading."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    import psycopg

    env = {k: v for k, v in os.environ.items() if not k.startswith("NBP_")} | {
        "NBP_HOME": str(tmp_path / "home"),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbp_assets", "postgres"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines, deadline = [], time.monotonic() + 180
        while not any(line.startswith("holding") for line in lines):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(lines)
            lines.append(line)
            assert time.monotonic() < deadline, "".join(lines)
        printed = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in lines if ":" in line}
        # the server's socket folder: under $NBP_HOME, or a short runtime folder when that path
        # is longer than a Unix socket name may be (pytest's tmp_path often is)
        socket_dir = printed["owner"].split()[2]
        assert list(Path(socket_dir).glob(".s.PGSQL.*")), f"no server socket in {socket_dir}"
        assert printed["owner"] == f"psql -h {socket_dir} -U postgres postgres"
        assert printed["apps"] == f"psql -h {socket_dir} -U nbp_app_reader postgres   (read-only)"
        with psycopg.connect(printed["URL (apps)"], autocommit=True) as app:
            assert app.execute("SELECT current_user").fetchone()[0] == "nbp_app_reader"
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                app.execute("CREATE TABLE product_intelligence.scratch (i int)")
        if shutil.which("psql"):  # the very command printed, as a person would paste it
            command = printed["apps"].split("   ")[0].split() + ["-Atc", "SELECT current_user"]
            assert (
                subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip() == "nbp_app_reader"
            )
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip().endswith("released"), out
