"""The weekly model lives in SQL files (nbp_assets/weekly/sql, core/sql/macros.sql) and
`compile` writes the exact SQL a week runs.

- the compiled files, run in a fresh DuckDB connection on a copy of the warehouse, write the
  week's stored rows again, bit for bit (the DuckDB and the Snowflake spelling);
- each weekly materialization's `sql_digest` is the sha256 `compile` writes for its file;
- the macros render numpy's arithmetic (round half to even at 6 dp, where ROUND does not);
- no weekly/model/asset module builds query text.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

import nbp_assets
from nbp_assets.core import sql, sqltext
from nbp_assets.core.partitions import Week
from nbp_assets.core.warehouse import HISTORY_TABLE, SOURCE_SCHEMA, DuckDBWarehouse
from nbp_assets.sources.synthetic import generate
from nbp_assets.weekly.assets import build_engine_assets
from nbp_assets.weekly.compile import compile_week
from nbp_assets.weekly.weights import load_weights

WEEK = Week.from_key("2026-11-09")
WEIGHTS = load_weights()
STEPS = ("eligibility", "signals", "scores", "nbp_ranked")
WEEK_TABLES = {
    "nbp_work.products": "week_start",
    "nbp_work.eligibility": "week_start",
    "nbp_work.signals": "week_start",
    "nbp_work.scores": "week_start",
    HISTORY_TABLE: "evaluated_at",
}


@pytest.fixture(scope="module")
def stored_week(tmp_path_factory):
    """A small bank's week through the real assets, in three party shards (the peers'
    temporary table and the per-shard queries are in the SQL)."""
    tmp = tmp_path_factory.mktemp("weekly_sql")
    warehouse = DuckDBWarehouse(database=str(tmp / "w.duckdb"), temp_directory=str(tmp / "tmp"), parties_per_shard=250)
    for name, df in generate(700, 5, end_week=WEEK.start, history_weeks=2).items():
        warehouse.replace_table(f"{SOURCE_SCHEMA}.{name}", df)
    assets = [a for a in build_engine_assets(WEIGHTS) if a.key.path[-1] != "nbp_current"]
    result = dg.materialize(assets, partition_key=WEEK.key, resources={"warehouse": warehouse}, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return warehouse, result, tmp


def _week_rows(con: duckdb.DuckDBPyConnection, table: str, column: str) -> pd.DataFrame:
    at = WEEK.evaluated_at if column == "evaluated_at" else WEEK.start
    return con.sql(f"SELECT * FROM {table} WHERE {column} = TIMESTAMP '{at:%Y-%m-%d %H:%M:%S}' ORDER BY ALL").df()


@pytest.mark.parametrize("engine", ["duckdb", "snowflake"])
def test_compiled_files_rerun_in_a_fresh_connection_give_the_stored_week(stored_week, engine):
    warehouse, _, tmp = stored_week
    out = compile_week(warehouse, WEEK, WEIGHTS, engine).write(tmp / f"compiled_{engine}")
    files = sorted(p.name for p in out.glob("*.sql"))
    assert files[:5] == [
        "01_eligibility.sql",
        "02_signals.sql",
        "03_signals_report.sql",
        "04_scores.sql",
        "05_nbp_ranked.sql",
    ]
    ranked = (out / "05_nbp_ranked.sql").read_text()
    # the engine's own spelling of the top 3 (weekly/sql/top_n.<engine>.sql)
    assert ("row_number() OVER (PARTITION BY s.party_id" in ranked) == (engine == "snowflake")
    assert ("max(k, 3)" in ranked) == (engine == "duckdb")
    assert ("CREATE OR REPLACE TEMP TABLE nbp_peers" in (out / "02_signals.sql").read_text()) == (engine == "duckdb")

    replay = tmp / f"replay_{engine}.duckdb"
    shutil.copy(tmp / "w.duckdb", replay)
    with duckdb.connect(str(tmp / "w.duckdb"), read_only=True) as stored, duckdb.connect(str(replay)) as con:
        expected = {t: _week_rows(stored, t, c) for t, c in WEEK_TABLES.items()}
        for table, column in WEEK_TABLES.items():  # nothing of the week is left to find
            at = WEEK.evaluated_at if column == "evaluated_at" else WEEK.start
            con.execute(f"DELETE FROM {table} WHERE {column} = TIMESTAMP '{at:%Y-%m-%d %H:%M:%S}'")
        for name in ("01_eligibility.sql", "02_signals.sql", "04_scores.sql", "05_nbp_ranked.sql"):
            con.execute((out / name).read_text())
        for table, column in WEEK_TABLES.items():
            got = _week_rows(con, table, column)
            assert len(got) > 0, table
            pd.testing.assert_frame_equal(got, expected[table], check_exact=True, obj=table)
        for check in (p for p in files if "_check_" in p):  # the invariants hold on the replayed week
            assert con.sql((out / check).read_text().rstrip().rstrip(";")).fetchall() == [], check


def test_each_materialization_records_the_digest_compile_writes(stored_week):
    warehouse, result, tmp = stored_week
    out = compile_week(warehouse, WEEK, WEIGHTS).write(tmp / "compiled_digest")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["week"] == WEEK.key and manifest["engine"] == "duckdb" and manifest["shards"] == 3
    assert manifest["model_version"] == WEIGHTS.model_version
    for step in STEPS:
        recorded = result.asset_materializations_for_node(step)[-1].metadata["sql_digest"].value
        entry = manifest["steps"][step]
        assert recorded == entry["sql_digest"] == manifest["files"][entry["file"]], step
        assert hashlib.sha256((out / entry["file"]).read_bytes()).hexdigest() == recorded, step
    # another spelling of the same week is another digest
    snowflake = compile_week(warehouse, WEEK, WEIGHTS, "snowflake").manifest["steps"]
    assert snowflake["nbp_ranked"]["sql_digest"] != manifest["steps"]["nbp_ranked"]["sql_digest"]


def _macro(expression: str) -> str:
    return sql.environment().from_string(expression).render()


# exact halves at the 6th decimal (as doubles times 1e6), their neighbours, and signs
HALVES = [5e-7, 2.5e-6, 1.5e-6, 3.5e-6, 0.1234565, 0.9999995, 0.0000015, -2.5e-6, -5e-7, 0.5, 1.0, 0.0, 1.0 - 5e-7]


def test_round6_and_clip01_macros_give_numpys_answers_bit_for_bit():
    rng = np.random.default_rng(11)
    values = np.concatenate(
        [HALVES, rng.random(20_000), (rng.integers(0, 2_000_000, 20_000) + 0.5) / 1e6, rng.normal(0, 3, 2_000)]
    )
    frame = pd.DataFrame({"x": values})
    con = duckdb.connect()
    con.register("frame", frame)
    round6, clip01 = _macro("{{ round6('x') }}"), _macro("{{ clip01('x') }}")
    got = con.sql(f"SELECT {round6} AS r, {clip01} AS c, round(x, 6) AS naive FROM frame").df()
    # bit for bit on the model's domain (x >= 0); below 0 equal too, but a negative that rounds
    # to zero comes back +0.0 where numpy says -0.0
    nonnegative = values >= 0
    assert got["r"].to_numpy()[nonnegative].tobytes() == np.round(values, 6)[nonnegative].tobytes()
    assert np.array_equal(got["r"].to_numpy(), np.round(values, 6))
    assert got["c"].to_numpy().tobytes() == np.clip(values, 0, 1).tobytes()
    # the values tell the two roundings apart: DuckDB's ROUND (half away from zero) is not numpy's
    assert (got["naive"].to_numpy() != np.round(values, 6)).sum() > 100
    for x, want in ((2.5e-6, 2e-6), (5e-7, 0.0), (3.5e-6, 4e-6)):
        assert con.sql(f"SELECT {_macro('{{ round6(x) }}'.replace('x', repr(repr(x))))}").fetchall() == [(want,)]
        assert np.round(x, 6) == want


def test_macros_render_the_spellings_of_model_sqltext():
    """The SQL files' macros and the Python helpers other modules still use spell the same."""
    assert _macro('{{ round6("x + y") }}') == sqltext.round6("x + y")
    assert _macro('{{ clip01("x") }}') == sqltext.clip01("x")
    for v in (0.45, 1.0, 0, 1e-7, 123456.789, 0.1 + 0.2, 2.0**60):
        rendered = sql.environment().from_string("{{ dbl(v) }}").render(v=v)
        assert rendered == sqltext.dbl(v) and float(rendered.removesuffix("e0")) == float(v)
    assert _macro('{{ lit("it\'s") }}') == sqltext.lit("it's") == "'it''s'"
    env = sql.environment()
    assert env.from_string("{{ day(d) }}").render(d=WEEK.evaluation_date) == sqltext.day(WEEK.evaluation_date)
    for d in (WEEK.start, WEEK.evaluated_at):
        assert env.from_string("{{ timestamp(d) }}").render(d=d) == sqltext.timestamp(d)
    assert _macro("{{ sum_left_to_right(['a', 'b', 'c', 'd']) }}") == "(((a + b) + c) + d)"
    assert _macro("{{ within('t', none) }}") == sqltext.within("t", None)
    assert _macro("{{ within('t', 'p') }}") == sqltext.within("t", "p")


def test_renderer_picks_the_engines_file_and_refuses_a_missing_parameter():
    assert sql.template_path("weekly", "top_n", "snowflake") == "weekly/sql/top_n.snowflake.sql"
    assert sql.template_path("weekly", "scores", "snowflake") == "weekly/sql/scores.sql"
    with pytest.raises(Exception, match="ranked"):
        sql.render("weekly", "checks/bad_ranks", top_n=3)
    rendered = sql.render("weekly", "checks/bad_ranks", ranked="r", top_n=3)
    assert rendered.digest == hashlib.sha256(rendered.text.encode()).hexdigest()
    assert sql.digest(["SELECT 1", "SELECT 2"]) == sql.sha256("SELECT 1;\n\nSELECT 2;\n\n")


PACKAGE = Path(nbp_assets.__file__).parent
NO_QUERY_TEXT = [
    *(
        PACKAGE / "weekly" / f"{m}.py"
        for m in (
            "eligibility",
            "signals",
            "ranking",
            "invariants",
            "suitability",
            "assets",
            "io",
            "steps",
            "compile",
            "registry",  # the model registry (issue 22): weekly/sql/registry_*.sql
        )
    ),
    *(PACKAGE / "monitoring" / f"{m}.py" for m in ("model", "assets")),
    # fairness and simulation (issue 21): their queries are fairness/sql and simulation/sql files
    *sorted((PACKAGE / "fairness").glob("*.py")),
    *sorted((PACKAGE / "simulation").glob("*.py")),
]
SQL_WORDS = ("SELECT ", "INSERT ", "DELETE ", "UPDATE ", " FROM ", " JOIN ", " WHERE ", "GROUP BY", "VALUES")


def query_text(source: str) -> list[str]:
    """String literals (f-strings included, docstrings excluded) that hold SQL keywords."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if any(word in node.value for word in SQL_WORDS):
                found.append(node.value)
    return found


def test_query_text_finder_finds_built_queries():
    assert query_text('q = f"SELECT {c} FROM {t}"')
    assert query_text('q = "DELETE FROM " + t')
    # the spellings monitoring built before its SQL files: implicit concatenation, a join
    assert query_text('r = ("(SELECT CAST(NULL AS VARCHAR) AS party_id, "\n"0 AS rank WHERE 1 = 0)")')
    assert query_text('s = ", ".join(f"(g{i})" for i in by)\nq = f"GROUP BY GROUPING SETS ({s})"')
    assert not query_text('"""Docstring: INSERT ... SELECT per shard."""\nlog = f"{n} rows written"')


def test_the_fairness_and_simulation_modules_are_searched_for_query_text():
    searched = {str(p.relative_to(PACKAGE)) for p in NO_QUERY_TEXT}
    for module in ("asset", "compute", "record", "alert", "review", "report", "breaches", "guard"):
        assert f"fairness/{module}.py" in searched
    assert "simulation/simulate.py" in searched
    for module in ("weekly/registry.py", "simulation/trail.py", "simulation/approve.py"):
        assert module in searched
    # the shape the fairness asset's counts had before their .sql files: found
    assert query_text('q = f"SELECT {dims}, count(*) AS customers FROM {active} c GROUP BY {dims}"')


@pytest.mark.parametrize("path", NO_QUERY_TEXT, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_query_text_is_built_in_the_weekly_python(path):
    assert query_text(path.read_text()) == []


def test_every_sql_file_says_what_it_is_and_stays_readable():
    files = [
        path
        for domain in ("weekly", "core", "monitoring", "fairness", "simulation")
        for path in sorted((PACKAGE / domain / "sql").rglob("*.sql"))
    ]
    assert len(files) > 30
    for path in files:
        text = path.read_text()
        assert text.startswith("{#"), f"{path.name}: no header comment"
        long = [line for line in text.splitlines() if len(line) > 110]
        assert not long, f"{path.name}: {long}"


SNOWFLAKE_ENV = {
    "SNOWFLAKE_ACCOUNT": "nbp-test-account",
    "SNOWFLAKE_USER": "NBP_ENGINE",
    "SNOWFLAKE_PASSWORD": "Nbp-Test-Pa55w0rd-q7Zx",
    "SNOWFLAKE_ROLE": "NBP_ENGINE_ROLE",
    "SNOWFLAKE_WAREHOUSE": "NBP_WH",
    "SNOWFLAKE_DATABASE": "NBP_TEST",
}


@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_snowflake_week_compiles_to_its_digests_and_replays_through_the_connector(tmp_path, monkeypatch):
    """Through fakesnow (Snowflake SQL answered by an in-process DuckDB): the production
    warehouse's week records the digests `compile` writes for engine snowflake, and the
    compiled statements, sent one by one through the Snowflake connector, write the week again."""
    import fakesnow

    from nbp_assets.resources import open_warehouse

    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    # production settings name a PostgreSQL; nothing here connects to it
    monkeypatch.setenv("NBP_POSTGRES_URL", "postgresql://nbp@127.0.0.1:1/unused")
    for var in ("NBP_DEPLOYMENT", "NBP_WEIGHTS_TABLE", "SNOWFLAKE_PRIVATE_KEY", "SNOWFLAKE_PRIVATE_KEY_PATH"):
        monkeypatch.delenv(var, raising=False)
    for var, value in SNOWFLAKE_ENV.items():
        monkeypatch.setenv(var, value)
    with fakesnow.patch():
        warehouse = open_warehouse("production")
        assert warehouse.dialect == "snowflake"
        with warehouse.session():
            for name, df in generate(300, 9, end_week=WEEK.start, history_weeks=2).items():
                warehouse.replace_table(f"{SOURCE_SCHEMA}.{name}", df)
        assets = [a for a in build_engine_assets(WEIGHTS) if a.key.path[-1] not in ("nbp_current", "activity")]
        result = dg.materialize(
            assets, partition_key=WEEK.key, resources={"warehouse": warehouse}, raise_on_error=False
        )
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        compiled = compile_week(warehouse, WEEK, WEIGHTS)
        assert compiled.engine == "snowflake" and compiled.manifest["shards"] == 1
        for step in STEPS:
            recorded = result.asset_materializations_for_node(step)[-1].metadata["sql_digest"].value
            assert recorded == compiled.manifest["steps"][step]["sql_digest"], step
        at = f"TIMESTAMP '{WEEK.evaluated_at:%Y-%m-%d %H:%M:%S}'"
        with warehouse.session():
            before = warehouse.query(f"SELECT * FROM {HISTORY_TABLE} WHERE evaluated_at = {at} ORDER BY party_id, rank")
            with warehouse.transaction() as tx:
                tx.execute(f"DELETE FROM {HISTORY_TABLE} WHERE evaluated_at = {at}")
                for name in ("01_eligibility.sql", "02_signals.sql", "04_scores.sql", "05_nbp_ranked.sql"):
                    for statement in compiled.files[name].split(";\n\n"):
                        if statement.strip():
                            tx.execute(statement)
            after = warehouse.query(f"SELECT * FROM {HISTORY_TABLE} WHERE evaluated_at = {at} ORDER BY party_id, rank")
    assert len(before) > 0
    pd.testing.assert_frame_equal(after, before, check_exact=True)
