"""Bad input, one clear line, everywhere (issue 20, point 5).

A mistake in what the user gives a command ends it with the reason on stderr (naming the
file or table, the column and example rows, row N being line N+1 of a CSV file), a
documented exit code and nothing written; never a traceback. The CLI runs here as a child
process, as a user would run it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from nbp_assets.contract.validation import ContractViolation
from nbp_assets.core.warehouse import DuckDBWarehouse
from nbp_assets.offers.rules import DEFAULT_RULES_FILE, rules_from_frame
from nbp_assets.sources.loader import LoadError, load_directory
from nbp_assets.sources.synthetic import generate
from nbp_assets.weekly.weights import DEFAULT_WEIGHTS_FILE

REPO = Path(__file__).resolve().parents[1]
END_WEEK = date(2026, 11, 9)


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NBP_WAREHOUSE_PATH", "NBP_DEPLOYMENT", "NBP_WEIGHTS_FILE")}
    env.update(NBP_HOME=str(home), NBP_DUCKDB_THREADS="1", PYTHONPATH=str(REPO), **extra)
    env.pop("DAGSTER_HOME", None)
    return env


def cli(home: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbp_assets", *args],
        cwd=REPO,
        env=env_for(home, **extra_env),
        capture_output=True,
        text=True,
        timeout=300,
    )


# ----------------------------------------------------------------------------- simulate --weights


def test_simulate_refuses_a_bad_weights_file_in_one_line_with_exit_2_and_writes_nothing(tmp_path):
    home = tmp_path / "home"
    text = pd.read_csv(DEFAULT_WEIGHTS_FILE, dtype=str, keep_default_na=False)
    text.loc[2, "weight"] = "high"  # data row 3: line 4 of the file
    bad = tmp_path / "bad.csv"
    text.to_csv(bad, index=False)
    cases = {
        "missing": (tmp_path / "nope.csv", "no such file"),
        "folder": (tmp_path, "is a folder, not a weights file"),
        "non-numeric": (bad, "column 'weight': decimal number expected [1 row(s)], e.g. row 3 (line 4): "),
    }
    for label, (path, says) in cases.items():
        run = cli(home, "simulate", "--weights", str(path), "--week", "2026-11-09")
        assert run.returncode == 2, (label, run.stderr)
        assert run.stderr.splitlines() == [run.stderr.strip()], (label, run.stderr)  # one line
        assert run.stderr.startswith(f"simulate: --weights {path}: "), (label, run.stderr)
        assert says in run.stderr, (label, run.stderr)
        assert "Traceback" not in run.stderr and "Error(" not in run.stderr, (label, run.stderr)
        assert run.stdout == ""
    assert "signal='" + text.loc[2, "signal"] + "', weight='high'" in run.stderr
    assert not home.exists()  # nothing written: no warehouse, no instance


# ----------------------------------------------------------------------------- load offer_rules.csv


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Path:
    """A valid folder of the weekly engine's tables (no offer files)."""
    folder = tmp_path_factory.mktemp("bank")
    for name, df in generate(30, 1, end_week=END_WEEK, history_weeks=1, products=12).items():
        df.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def recipe_rules() -> pd.DataFrame:
    """The recipe's rules (one version, five rows: the ELSE last) as CSV text."""
    return pd.read_csv(DEFAULT_RULES_FILE, dtype=str, keep_default_na=False)


def with_rules(bank: Path, folder: Path, rules: pd.DataFrame) -> Path:
    shutil.copytree(bank, folder)
    rules.to_csv(folder / "offer_rules.csv", index=False)
    return folder


def two_else(r):
    extra = r.iloc[[4]].assign(priority="6")
    return pd.concat([r, extra], ignore_index=True)


def else_bound(r):
    r.loc[4, "income_gt"] = "10"
    return r


def else_not_last(r):
    r.loc[0, "priority"] = "9"
    return r


def valid_from_differs(r):
    r.loc[1, "valid_from"] = "2001-01-01"
    return r


def gt_and_ge(r):
    r.loc[0, "income_ge"] = "100000"
    return r


def version_before_previous(r):
    return pd.concat([r, r.assign(rules_version="2", valid_from="1999-01-01")], ignore_index=True)


BROKEN_RULES = {  # how the rules break -> (check named, CSV data row of the first example)
    two_else: ("every version needs exactly one ELSE row", 1),
    else_bound: ("the ELSE row takes no bounds", 5),
    else_not_last: ("the ELSE row must have the highest priority of its version", 5),
    valid_from_differs: ("all rows of a version share one valid_from", 1),
    gt_and_ge: ("set income_gt or income_ge, not both", 1),
    version_before_previous: ("a later version must start strictly later", 6),
}


@pytest.mark.parametrize("change", list(BROKEN_RULES), ids=lambda f: f.__name__)
def test_load_refuses_offer_rules_that_break_the_rules_contract(bank, tmp_path, change):
    folder = with_rules(bank, tmp_path / "folder", change(recipe_rules()))
    with pytest.raises(LoadError) as rejected:
        load_directory(folder)
    check, row = BROKEN_RULES[change]
    text = str(rejected.value)
    assert f"{folder / 'offer_rules.csv'}  [table 'offer_rules']" in text, text
    assert check in text and f"row {row}: rules_version=" in text, text


def test_a_header_only_rules_file_is_refused(bank, tmp_path):
    folder = with_rules(bank, tmp_path / "folder", recipe_rules().iloc[0:0])
    with pytest.raises(LoadError, match="the rules table has no rows"):
        load_directory(folder)
    # offer_tables_job runs the same check on nbp_source.offer_rules: a plain contract failure, no IndexError
    with pytest.raises(ContractViolation, match="the rules table has no rows"):
        rules_from_frame(pd.read_csv(DEFAULT_RULES_FILE).iloc[0:0], source="nbp_source.offer_rules")


def test_the_cli_load_of_broken_rules_is_all_or_nothing(bank, tmp_path):
    """Exit 2, the file and check named, no traceback, and nbp_source.offer_rules as it was."""
    home = tmp_path / "home"
    good = cli(home, "load", str(with_rules(bank, tmp_path / "good", recipe_rules())))
    assert good.returncode == 0, good.stderr
    warehouse = DuckDBWarehouse(database=str(home / "warehouse.duckdb"))
    before = warehouse.query("SELECT * FROM nbp_source.offer_rules ORDER BY priority")
    before_activity = warehouse.scalar("SELECT count(*) FROM nbp_source.activity")
    folder = with_rules(bank, tmp_path / "bad", else_bound(recipe_rules()))
    activity = pd.read_parquet(folder / "activity.parquet")
    activity.iloc[:-1].to_parquet(folder / "activity.parquet", index=False)  # a valid change that must not land
    run = cli(home, "load", str(folder))
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert f"{folder / 'offer_rules.csv'}  [table 'offer_rules']" in run.stderr
    assert "the ELSE row takes no bounds [1 row(s)], e.g." in run.stderr and "row 5: " in run.stderr
    after = warehouse.query("SELECT * FROM nbp_source.offer_rules ORDER BY priority")
    pd.testing.assert_frame_equal(before, after)
    assert warehouse.scalar("SELECT count(*) FROM nbp_source.activity") == before_activity == len(activity)


# ----------------------------------------------------------------------------- a failed week


@pytest.mark.integration
def test_a_failed_week_prints_its_cause_once_plainly(tmp_path, clean_postgres):
    home = tmp_path / "home"
    made = cli(home, "generate", "--customers", "200", "--seed", "3", "--weeks", "1", "--end-week", "2026-11-09")
    assert made.returncode == 0, made.stderr
    DuckDBWarehouse(database=str(home / "warehouse.duckdb")).query(
        "UPDATE nbp_source.customers SET status = lower(status) WHERE party_id IN "
        "(SELECT party_id FROM nbp_source.customers ORDER BY party_id LIMIT 2) RETURNING party_id"
    )
    run = cli(home, "materialize", "--week", "2026-11-09", NBP_POSTGRES_URL=clean_postgres)
    assert run.returncode == 1  # a week failed
    both = run.stdout + run.stderr
    assert both.count("column 'status'") == 1, both  # the cause, once
    assert "FAILED customers: table 'nbp_source.customers'" in run.stderr
    assert "  failed step : customers (its cause is printed above: FAILED customers)" in run.stdout
    assert "dagster._core" not in both and "Failure:" not in both and "Traceback" not in both, both


# ----------------------------------------------------------------------------- pipes, help, demo


def test_output_cut_short_by_its_reader_ends_quietly(tmp_path):
    """`show P | head -1`: the reader is gone before the command writes (`pools` prints its
    report with print(), as `show` does, and needs no data)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "nbp_assets", "pools"],
            cwd=REPO,
            env=env_for(tmp_path / "home"),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert run.stderr == ""
    assert run.returncode == 141  # 128 + SIGPIPE, as a shell tool the reader left


def built_parser() -> argparse.ArgumentParser:
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
    return parsers["main"]


def test_help_lists_every_command_and_every_command_says_what_it_does(tmp_path):
    parser = built_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    listed = {line.split()[0] for line in parser.description.splitlines()[2:] if line[:1].isalpha()}
    assert set(sub.choices) <= listed, f"not in --help's list: {set(sub.choices) - listed}"
    assert [name for name, p in sub.choices.items() if not p.description] == []
    shown = cli(tmp_path / "home", "simulate", "--help").stdout
    assert "Rank a week with a candidate weights file" in shown and "Exit codes: 0" in shown


def test_the_demo_counts_the_weekly_jobs_assets_and_checks_from_its_definition():
    from nbp_assets.cli import weekly_job_size
    from nbp_assets.definitions import WEEKLY_JOB, build_definitions

    graph = build_definitions().resolve_job_def(WEEKLY_JOB).asset_layer.asset_graph
    assert weekly_job_size() == f"{len(graph.executable_asset_keys)} assets and {len(graph.asset_check_keys)} checks"

    @dg.asset
    def only():
        return 1

    one = dg.Definitions(assets=[only], jobs=[dg.define_asset_job("one")]).resolve_job_def("one")
    assert weekly_job_size(one) == "1 asset and 0 checks"
