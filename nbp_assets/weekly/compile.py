"""`python -m nbp_assets compile --week W [--engine duckdb|snowflake] [--out DIR]`: the exact
SQL a week runs, as files a reviewer reads and pastes into the warehouse.

The statements come from the functions the weekly assets call (weekly/steps.py through
weekly/assets.py), so there is one path: a step file's sha256 is the `sql_digest` its
materialization records for the same week, weights and engine. The files, numbered in run
order (no header, so `sha256sum` gives the digest):

  01_eligibility.sql         the product register and the CON-006 gate (DELETE + INSERT)
  02_signals.sql             the signals (the peers' temporary table first, when sharded)
  03_signals_report.sql      the signals step's report counts (read only, per shard)
  04_scores.sql              the scores
  05_nbp_ranked.sql          the top 3, into the history table
  06_check_<name>.sql ...    nbp_ranked's business invariants (read only: offending rows)
  manifest.json              file -> sha256, step -> file and sql_digest, week, engine,
                             model_version, shards

Run the step files in order in one session (DuckDB: `duckdb warehouse.duckdb <
01_eligibility.sql` ...) to write the week's rows; each step reads what the previous one
stored. Compiling needs the warehouse: the point-in-time inputs are checked and dated there
(which snapshot is in force), and the party shards are cut from the week's stored active
customers (the customers step must have run for the week). Nothing is written to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from nbp_assets.core import settings
from nbp_assets.core.partitions import Week
from nbp_assets.core.sql import ENGINES, script, sha256
from nbp_assets.core.warehouse import WarehouseResource
from nbp_assets.weekly import assets as engine
from nbp_assets.weekly import steps
from nbp_assets.weekly.io import party_shards
from nbp_assets.weekly.weights import Weights


@dataclass
class Compiled:
    week: Week
    engine: str
    files: dict[str, str] = field(default_factory=dict)  # file name -> text, in run order
    manifest: dict = field(default_factory=dict)

    def write(self, out: Path) -> Path:
        """Write the files and manifest.json into `out` (replacing earlier .sql files there)."""
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.sql"):
            old.unlink()
        for name, text in self.files.items():
            (out / name).write_text(text, encoding="utf-8")
        (out / "manifest.json").write_text(json.dumps(self.manifest, indent=2) + "\n", encoding="utf-8")
        return out


def default_out(week: Week, engine_name: str) -> Path:
    """$NBP_HOME/compiled/<week>/<engine>/ (beside the local warehouse and instance)."""
    return settings.nbp_home() / "compiled" / week.key / engine_name


def _shards(warehouse: WarehouseResource, week: Week, engine_name: str) -> list[str | None]:
    if engine_name == warehouse.dialect:
        return engine.week_shards(warehouse, warehouse, week)
    # another engine's spelling of the same week: Snowflake runs in one pass, DuckDB in its ranges
    size = None if engine_name == "snowflake" else settings.duckdb_parties_per_shard()
    return party_shards(warehouse, engine._active(week, "party_id"), size)


def compile_week(
    warehouse: WarehouseResource, week: Week, weights: Weights, engine_name: str | None = None
) -> Compiled:
    """The week's statements for `engine_name` (default: the warehouse's own engine)."""
    engine_name = engine_name or warehouse.dialect
    if engine_name not in ENGINES:
        raise ValueError(f"engine {engine_name!r}: one of {', '.join(ENGINES)}")
    with warehouse.session():
        eligibility, _ = engine.eligibility_sql(warehouse, week)
        relations, *_ = engine.week_signal_relations(warehouse, week, weights)
        health = engine.ranked_health(warehouse, week)
        shards = _shards(warehouse, week, engine_name)
    signals = steps.signals(week, relations, shards)
    reports, suppressed = steps.signal_report(relations, shards)
    scores = steps.scores(week, weights, shards)
    ranked = steps.nbp_ranked(week, weights.model_version, shards, engine_name)
    compiled = Compiled(week, engine_name)
    step_files = {}
    for number, step in ((1, eligibility), (2, signals), (4, scores), (5, ranked)):
        name = f"{number:02d}_{step.step}.sql"
        compiled.files[name] = step.script
        step_files[step.step] = {"file": name, "sql_digest": step.digest}
    compiled.files["03_signals_report.sql"] = script([*reports, *suppressed])
    for number, (check, (offending, _)) in enumerate(steps.ranked_checks(week, weights, health, shards).items(), 6):
        compiled.files[f"{number:02d}_check_{check}.sql"] = script([offending])
    compiled.files = dict(sorted(compiled.files.items()))
    compiled.manifest = {
        "week": week.key,
        "evaluation_date": week.evaluation_date.isoformat(),
        "engine": engine_name,
        "model_version": weights.model_version,
        "signals_version": weights.signals_version,
        "weights_source": weights.source,
        "shards": len(shards),
        "steps": step_files,
        "files": {name: sha256(text) for name, text in compiled.files.items()},
    }
    return compiled


def cmd_compile(args) -> None:
    from nbp_assets.resources import deployment_weights, open_warehouse

    try:
        week = Week.from_key(args.week)
    except ValueError as exc:
        raise SystemExit(f"not a week: {exc} (weeks are keyed by their Monday, e.g. 2026-11-09)") from None
    warehouse = open_warehouse()
    compiled = compile_week(warehouse, week, deployment_weights(), args.engine)
    out = compiled.write(Path(args.out) if args.out else default_out(week, compiled.engine))
    print(f"week {week.key} ({compiled.engine}, model_version {compiled.manifest['model_version']}): {out}")
    for name, digest in compiled.manifest["files"].items():
        print(f"  {name}  sha256 {digest[:16]}")


def add_parser(sub) -> None:
    """`compile`, registered by nbp_assets/cli.py."""
    p = sub.add_parser(
        "compile",
        help="write the exact SQL a week runs (numbered files in run order and manifest.json with their sha256)",
    )
    p.add_argument("--week", required=True, help="Monday key, e.g. 2026-11-09 (required, no default)")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=None,
        help="spell the SQL for this engine (default: the deployment's warehouse: duckdb locally, snowflake in production)",
    )
    p.add_argument("--out", default=None, help="directory to write (default: $NBP_HOME/compiled/<week>/<engine>/)")
    p.set_defaults(func=cmd_compile)
