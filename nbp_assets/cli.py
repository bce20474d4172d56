"""Command line: `python -m nbp_assets COMMAND`, one of:

demo        generate a synthetic bank, materialize the latest closed week, print where to look
generate    write a deterministic synthetic bank into the local warehouse's source schema
load DIR    validate a folder of <table>.csv/.parquet files, then load them (all or nothing)
materialize run the weekly job for one week (default: the week that closed last)
backfill    run the weekly job for a range of weeks, oldest first
compile     write the exact SQL a week runs (numbered files + manifest.json with their sha256)
show        a customer's current top 3 as the apps see it, and what was withheld from them and why
postgres    how to connect to the apps' PostgreSQL; keeps the embedded server up until Ctrl-C
check       validate the deployment's configuration (NBP_DEPLOYMENT) without writing anything
alerts      compliance's fairness-alert workflow: list, show, ack, assign, comment, resolve
simulate    rank a week with candidate weights in a sandbox and compare it with the live week
approve     record who approved a simulated challenger's model_version, when, why (exit 2: refused)
pools       show who holds the Dagster concurrency pools' slots; --free RUN_ID frees a dead run's
kafka       the next-best-offer stream on Kafka: broker (dev), topics, process, sink, status

demo, materialize and backfill end with a summary per week (checks, fairness breaches,
alerts, whether nbp_current was published). Exit codes: 0 every week ran and every
blocking check passed (failed warning checks are in the summary); 1 a week failed;
2 refused before anything ran (bad input: the reason in one line per problem on stderr,
nothing written); 3 only with --fail-on-warning: a warning check failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from datetime import date
from pathlib import Path

from nbp_assets.core import settings
from nbp_assets.ops import local_instance

# Local instance: weekly steps share one pool of one slot (see weekly/io.py WEEKLY_POOL).
# Run monitoring (done by the daemon of `dagster dev`) fails runs stuck starting, cancelling or
# running for over 4 hours, and frees the pool slots of ended runs after a minute: a run
# killed while holding a slot must not block every later run. The CLI has no daemon and
# does the same for its own runs before each launch (ops_pools.py).
LOCAL_INSTANCE_YAML = """# written by `python -m nbp_assets` (cli.py LOCAL_INSTANCE_YAML)
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_runtime_seconds: 14400
  poll_interval_seconds: 30
  free_slots_after_run_end_seconds: 60
"""
# What earlier versions wrote: replaced by the above when found unchanged.
_OLD_LOCAL_INSTANCE_YAMLS = (
    """telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
""",
)


class Refused(SystemExit):
    """The command was refused before anything ran (a bad week, a reversed range): exit
    code 2, the reason on stderr."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.code = 2


def _ensure_dagster_home() -> str:
    """Persist runs under $NBP_HOME so `dagster dev` shows what the CLI materialized."""
    home = settings.dagster_home() or str(settings.nbp_home() / "dagster_home")
    os.makedirs(home, exist_ok=True)
    yaml = os.path.join(home, "dagster.yaml")
    if not os.path.exists(yaml) or Path(yaml).read_text() in _OLD_LOCAL_INSTANCE_YAMLS:
        Path(yaml).write_text(LOCAL_INSTANCE_YAML)
    settings.use_dagster_home(home)
    return home


def latest_closed_week() -> str:
    from nbp_assets.core.partitions import weekly_partitions

    key = weekly_partitions.get_last_partition_key()
    if key is None:
        raise Refused("no week has closed yet since the first partition")
    return key


def _write_source_chunks(chunks, customers: int, chunk_customers: int) -> str:
    """Write a generated bank chunk by chunk: a table's first chunk replaces it, the others are
    appended, so only one chunk is in memory whatever the bank's size. Prints progress."""
    from nbp_assets.core.warehouse import SOURCE_SCHEMA
    from nbp_assets.resources import open_warehouse

    rows: dict[str, int] = {}
    n_chunks = -(-customers // chunk_customers)
    done, k = 0, 0
    started = last = time.perf_counter()
    with open_warehouse().session() as warehouse:
        try:
            # A plain loop, not enumerate(): its cached result tuple would keep the last chunk alive.
            for tables in chunks:
                for name, df in tables.items():
                    table = f"{SOURCE_SCHEMA}.{name}"
                    if name in rows:
                        warehouse.append_table(table, df)
                    else:
                        warehouse.replace_table(table, df)
                    rows[name] = rows.get(name, 0) + len(df)
                del tables, df
                k, done = k + 1, min(done + chunk_customers, customers)
                now = time.perf_counter()
                print(
                    f"  chunk {k}/{n_chunks}: {done:,} of {customers:,} customers written, "
                    f"{now - last:.1f}s (total {now - started:.1f}s)",
                    flush=True,
                )
                last = now
        except BaseException:
            if rows:
                print(
                    f"generation stopped after {k} of {n_chunks} chunk(s): the source tables hold a partial "
                    "bank; run generate again",
                    file=sys.stderr,
                )
            raise
        for name, n in rows.items():
            print(f"  {SOURCE_SCHEMA}.{name:<17} {n:>12,} rows")
        return warehouse.describe()


def cmd_generate(args: argparse.Namespace) -> None:
    from nbp_assets.sources.synthetic import DEFAULT_CHUNK_CUSTOMER_WEEKS, generate_chunks

    end_week = date.fromisoformat(args.end_week or latest_closed_week())
    chunk = getattr(args, "chunk_customers", None) or max(1, DEFAULT_CHUNK_CUSTOMER_WEEKS // args.weeks)
    started = time.perf_counter()
    chunks = generate_chunks(
        args.customers, args.seed, end_week=end_week, history_weeks=args.weeks, chunk_customers=chunk
    )
    where = _write_source_chunks(chunks, args.customers, chunk)
    print(
        f"generated {args.customers:,} customers, {args.weeks} week(s) up to {end_week} "
        f"(seed {args.seed}) into {where} in {time.perf_counter() - started:.1f}s"
    )


def cmd_load(args: argparse.Namespace) -> None:
    from nbp_assets.core.warehouse import SOURCE_SCHEMA
    from nbp_assets.resources import open_warehouse
    from nbp_assets.sources.loader import LoadError, load_directory, next_steps, store

    try:
        loaded = load_directory(args.directory)
    except LoadError as exc:
        print(f"rejected, nothing was loaded:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    warehouse = open_warehouse()
    weights = settings.nbp_home() / "weights.csv" if loaded.weights is not None else None
    # One transaction for all the tables (loader.store): killed midway, the previous load stays whole.
    store(
        warehouse,
        loaded,
        weights,
        lambda name, rows: print(f"  {SOURCE_SCHEMA}.{name:<17} {rows:>12,} rows  <- {loaded.files[name]}", flush=True),
    )
    print(f"committed {len(loaded.tables)} table(s) as one unit into {warehouse.describe()}")
    if settings.first_week_file().exists():  # the demo bank's first week says nothing about this data
        settings.first_week_file().unlink()
        print(
            f"  removed {settings.first_week_file()} (the demo bank's first week); the UI offers weeks from "
            f"NBP_FIRST_WEEK, else {settings.DEFAULT_FIRST_WEEK}"
        )
    if weights is not None:
        print(f"  weights -> {weights} (reload the code location to use them)")
    for name in loaded.missing_optional:
        print(f"  {name}: not provided (optional; any earlier {name} was removed; its signal is dropped)")
    print("\n".join(next_steps(loaded.tables, latest_closed_week())))


def materialize_week(week: str):
    """Run the weekly job for one week against the persistent local instance; print and
    return its summary (run_summary.WeekSummary)."""
    home = _ensure_dagster_home()
    from nbp_assets.resources import build_resources

    # The week needs PostgreSQL only at its end (fairness alerts, the publish): the local
    # server starts meanwhile, off the critical path.
    build_resources()["postgres"].start_in_background()
    from nbp_assets.definitions import WEEKLY_JOB, build_definitions
    from nbp_assets.ops.pools import execute_job

    job = build_definitions().resolve_job_def(WEEKLY_JOB)
    _data_errors_without_traceback()
    started = time.perf_counter()
    with local_instance.open_instance(home) as instance:
        # Frees the pool slots of runs killed earlier, tags this run with its process (so a
        # later CLI can tell if it dies), and says who holds the pool while a step waits.
        result = execute_job(
            job,
            instance,
            partition_key=week,
            raise_on_error=False,
            # Step-level INFO is progress a person wants to see; DEBUG events belong in the UI.
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
    for event in result.all_events:
        if event.is_step_failure:
            print(f"FAILED {event.step_key}: {failure_cause(event.step_failure_data)}", file=sys.stderr)
    return _summarize(job, result, week, time.perf_counter() - started)


def _summarize(job, result, week: str, seconds: float):
    from nbp_assets.fairness.config import fairness_config
    from nbp_assets.ops.run_summary import render, summarize_run
    from nbp_assets.resources import build_resources

    resources = build_resources()
    summary = summarize_run(job, result, week, resources["postgres"].conninfo(), resources["warehouse"])
    print("\n".join(render(summary, fairness_config().threshold_pp, seconds)), flush=True)
    return summary


def _data_errors_without_traceback() -> None:
    """An ordinary data or check failure (dg.Failure) is told in its own words: the stack
    trace Dagster's console logger adds says nothing to an operator (it stays in the UI).
    Dagster's console logger is not a registered logging.Logger, so this edits records as
    they are made."""
    make = logging.getLogRecordFactory()
    if getattr(make, "nbp_quiet", False):
        return

    def quiet(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if record.name == "dagster" and record.levelno >= logging.ERROR:
            message = record.getMessage()
            if "dagster._core.definitions.events.Failure:" in message:
                # The step's and the run's failure events both carry the cause: the CLI
                # prints it once itself (materialize_week's FAILED line); keep the headline.
                record.msg, record.args = message.split("\n\n")[0].rstrip(), ()
        return record

    quiet.nbp_quiet = True
    logging.setLogRecordFactory(quiet)


def failure_cause(failure) -> str:
    """What went wrong, for a person: a data or check failure's own description (no
    traceback), else the innermost cause of the error, not Dagster's "Error occurred while
    executing op" wrapper."""
    if failure.user_failure_data is not None and failure.user_failure_data.description:
        return failure.user_failure_data.description.strip()
    error = failure.error
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def _checked_week(key: str) -> str:
    from nbp_assets.core.partitions import FIRST_WEEK, Week

    try:
        Week.from_key(key)
    except ValueError as exc:
        raise Refused(f"not a week: {exc} (weeks are keyed by their Monday, e.g. 2026-11-09)") from None
    if key < FIRST_WEEK or key > latest_closed_week():
        raise Refused(f"week {key} is outside the weeks that can run: {FIRST_WEEK} to {latest_closed_week()}")
    return key


def fairness_settings_line() -> str:
    """The NBP_FAIRNESS_* settings in one line, or a ConfigurationError whose one line names
    the variable and the bad value (read before anything is written)."""
    from nbp_assets.core.settings import ConfigurationError
    from nbp_assets.fairness.config import fairness_config

    try:
        config = fairness_config()
    except ValueError as exc:  # every NBP_FAIRNESS_* error names its variable
        raise ConfigurationError(str(exc)) from None
    return f"fairness: judges {', '.join(config.judged)}; groups of {config.min_group_size}+ customers"


def _checked_fairness() -> None:
    """A bad NBP_FAIRNESS_* value refuses the command (exit 2) before a week runs or a file is written."""
    try:
        fairness_settings_line()
    except ValueError as exc:
        raise Refused(str(exc)) from None


def _exit(summaries, fail_on_warning: bool) -> None:
    """Exit with the documented code (run_summary.exit_code); 0 returns normally."""
    from nbp_assets.ops.run_summary import exit_code

    code = exit_code(summaries, fail_on_warning)
    if code:
        raise SystemExit(code)


def _checked_config() -> None:
    """Refuse a run (exit 2, one line) whose configuration the code location would refuse,
    before anything is written (no PostgreSQL started, no Dagster home created)."""
    _checked_fairness()
    try:
        settings.drift_psi_warn()
        settings.outcome_gap_warn_pp()
        settings.control_group_share()
        settings.control_group_salt()
    except settings.ConfigurationError as exc:
        raise Refused(f"refused, nothing ran: {exc}") from None


def cmd_materialize(args: argparse.Namespace) -> None:
    _checked_config()
    week = _checked_week(args.week or latest_closed_week())
    _exit([materialize_week(week)], args.fail_on_warning)


def cmd_backfill(args: argparse.Namespace) -> None:
    _checked_config()
    import dagster as dg

    from nbp_assets.core.partitions import weekly_partitions

    first, last = _checked_week(args.first), _checked_week(args.last)
    if first > last:
        raise Refused(f"backfill range is reversed: {first} comes after {last} (give the oldest week first)")
    weeks = weekly_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))
    summaries = []
    for week in weeks:  # oldest first, so the newest week ends up current in PostgreSQL
        summaries.append(materialize_week(week))
        print(flush=True)
    failed = [s.week for s in summaries if not s.succeeded]
    warned = [s.week for s in summaries if s.failed(blocking=False)]
    print(
        f"backfill {first} to {last}: {len(weeks) - len(failed)} of {len(weeks)} week(s) succeeded"
        + (f"; failed: {', '.join(failed)}" if failed else "")
        + (f"; warning checks failed in: {', '.join(warned)}" if warned else "")
    )
    _exit(summaries, args.fail_on_warning)


def cmd_demo(args: argparse.Namespace) -> None:
    from datetime import timedelta

    _checked_config()
    if args.fresh and settings.nbp_home().exists():
        shutil.rmtree(settings.nbp_home())
    args.end_week = None
    cmd_generate(args)
    week = latest_closed_week()
    # The UI offers exactly the weeks this bank covers (settings.first_week), not two years
    # of weeks without data whose runs could only fail.
    first = (date.fromisoformat(week) - timedelta(weeks=args.weeks - 1)).isoformat()
    settings.first_week_file().write_text(first + "\n")
    print(f"the UI offers weeks {first} to {week}, the weeks of this bank ({settings.first_week_file()})")
    started = time.perf_counter()
    summary = materialize_week(week)
    if not summary.succeeded:
        raise SystemExit(f"week {week} FAILED: see the errors above")
    print(f"materialized week {week} ({weekly_job_size()}) in {time.perf_counter() - started:.1f}s")
    _print_where_to_look(week)
    _exit([summary], args.fail_on_warning)


def weekly_job_size(job=None) -> str:
    """What the weekly job runs, counted from its definition: "11 assets and 20 checks"."""
    if job is None:
        from nbp_assets.definitions import WEEKLY_JOB, build_definitions

        job = build_definitions().resolve_job_def(WEEKLY_JOB)
    graph = job.asset_layer.asset_graph
    assets, checks = len(graph.executable_asset_keys), len(graph.asset_check_keys)
    return f"{assets} asset{'s' * (assets != 1)} and {checks} check{'s' * (checks != 1)}"


def _print_where_to_look(week: str) -> None:
    from nbp_assets.alerts.cli import deliver_now as alerts_deliver_now
    from nbp_assets.publish import postgres as pg
    from nbp_assets.resources import build_resources

    resources = build_resources()
    url = resources["postgres"].conninfo()
    week_rows = resources["warehouse"].query(
        "SELECT party_id, count(*) OVER () AS n FROM product_intelligence.next_best_product "
        "WHERE evaluated_at = (SELECT max(evaluated_at) FROM product_intelligence.next_best_product) LIMIT 1"
    )
    print("\nWhere to look:")
    print(f"  warehouse history : {settings.warehouse_path()}  table product_intelligence.next_best_product")
    print(f"  fairness report   : same file, table nbp_work.fairness_report (week_start = '{week}'),")
    print(f"                      and {settings.nbp_home() / 'reports' / 'fairness' / (week + '.html')}")
    live = pg.current_evaluated_at(url)
    print(
        f"  apps' current top3: PostgreSQL {resources['postgres'].describe()}, product_intelligence.nbp_current "
        f"(week {pg.week_key(live) if live else 'none'}); with product names: {pg.SCHEMA}.{pg.NAMED_VIEW}"
    )
    print("                      connect: .venv/bin/python -m nbp_assets postgres")
    print(f"  Dagster UI        : DAGSTER_HOME={settings.dagster_home()} .venv/bin/dagster dev -h 127.0.0.1 -p 3000")
    print("  alerts            : " + "\n                      ".join(alerts_deliver_now(url)))
    if len(week_rows):
        sample = week_rows["party_id"].iloc[0]
        print(f"\nTop 3 for {sample} in nbp_current (of {int(week_rows['n'].iloc[0]):,} rows this week):")
        print(pg.read_current(url, sample).to_string(index=False))


def cmd_show(args: argparse.Namespace) -> None:
    """A customer's current top 3 as the apps see it, with product names, the reason phrase,
    and what each signal contributed to the score and each penalty's factor, as the week
    computed them (nbp_work.scores and nbp_work.signals); then the products the suitability
    rule withheld from the customer that week, and why (nbp_work.withheld)."""
    from datetime import timedelta

    import pandas as pd

    from nbp_assets.core.sqltext import timestamp
    from nbp_assets.publish import postgres as pg
    from nbp_assets.resources import build_resources, open_warehouse
    from nbp_assets.weekly import registry
    from nbp_assets.weekly.explain import explanation_lines, week_explanation, week_withheld, withheld_lines

    conninfo = build_resources()["postgres"].conninfo()
    rows = pg.read_current(conninfo, args.party_id)
    evaluated_at = rows["evaluated_at"].iloc[0] if len(rows) else pg.current_evaluated_at(conninfo)
    if evaluated_at is None:
        raise SystemExit(f"{args.party_id}: no recommendation in the current week (product_intelligence.nbp_current)")
    week_start = pd.Timestamp(evaluated_at) - timedelta(days=7)
    at = f"week_start = {timestamp(week_start.to_pydatetime())}"
    with open_warehouse().session() as warehouse:
        products = warehouse.query(f"SELECT product_id, product_name, product_class FROM nbp_work.products WHERE {at}")
        explained = week_explanation(warehouse, args.party_id, week_start.to_pydatetime())
        withheld = week_withheld(warehouse, args.party_id, week_start.to_pydatetime(), products)
        approval = registry.approval_of(warehouse, rows["model_version"].iloc[0]) if len(rows) else None
    if rows.empty and withheld.empty:
        raise SystemExit(f"{args.party_id}: no recommendation in the current week (product_intelligence.nbp_current)")
    explained = explained.drop(columns=[c for c in ("score", "primary_signal", "model_version") if c in explained])
    shown = rows.merge(products, on="product_id", how="left").merge(
        explained, on=["party_id", "product_id"], how="left"
    )
    version = f", model_version {rows['model_version'].iloc[0]}" if len(rows) else ""
    print(
        f"{args.party_id}: current week {week_start:%Y-%m-%d} (evaluated {pd.Timestamp(evaluated_at):%Y-%m-%d})"
        f"{version}"
    )
    if rows.empty:
        print("  no product recommended this week")
    else:
        print(f"  approval: {approval}")  # the model registry's
    for row in shown.to_dict("records"):
        print(
            f"  {row['rank']}. {row['product_id']} {row['product_name']} ({row['product_class']}): "
            f"score {row['score']:.6f}, primary_signal {row['primary_signal']}"
        )
        print("\n".join(explanation_lines(row)))
    print("\n".join(withheld_lines(withheld)))


def cmd_check(args: argparse.Namespace) -> None:
    from nbp_assets.contract.validation import ContractViolation
    from nbp_assets.core.settings import ConfigurationError
    from nbp_assets.publish.postgres import PostgresUnavailable
    from nbp_assets.resources import check_deployment

    try:
        fairness = fairness_settings_line()  # first: a bad value is refused before anything is opened
        lines = [*check_deployment(), fairness]
    except (ConfigurationError, ContractViolation, PostgresUnavailable) as exc:
        print(f"configuration check FAILED: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print("\n".join(lines) + "\nconfiguration ok")


def cmd_pools(args: argparse.Namespace) -> None:
    """Who holds the concurrency pools' slots (and since when); --free RUN_ID fails that run if
    it is unfinished and frees its slots; --free-dead frees every run the CLI can prove dead."""
    home = _ensure_dagster_home()
    from nbp_assets.ops import pools as ops_pools

    with local_instance.open_instance(home) as instance:
        if args.free:
            run = instance.get_run_by_id(args.free)
            if run is None and args.free not in ops_pools.holding_run_ids(instance):
                raise SystemExit(f"no run {args.free} in the instance at {settings.dagster_home()}")
            process = ops_pools.run_process(run.tags) if run is not None else None
            if process is not None and process.alive and not run.is_finished:
                raise SystemExit(
                    f"run {args.free} is still running ({process.text}): stop it first "
                    "(or wait for its step to end); its slots were not freed"
                )
            print(ops_pools.free_run(instance, args.free, "freed by the operator (`pools --free`)"))
        elif args.free_dead:
            if not ops_pools.free_dead_runs(instance):
                print("no dead run holds a pool slot")
        print("\n".join(ops_pools.pools_report(instance)))


def cmd_postgres(args: argparse.Namespace) -> None:
    """How to reach the apps' PostgreSQL. The embedded server listens (on a Unix socket in
    its data folder) only while a process holds it: this one holds it until Ctrl-C, SIGTERM or
    SIGHUP (its terminal closed), each ending it the same way: through the normal exit, whose
    atexit lets go of the server (the last holder stops it)."""
    import signal

    def stop_holding(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop_holding)
    from nbp_assets.publish import postgres as pg
    from nbp_assets.resources import build_resources

    resource = build_resources()["postgres"]
    url = resource.conninfo()  # starts the embedded server if it is not running
    params = pg.conninfo_to_dict(url)
    print(f"PostgreSQL for the apps: {resource.describe()}")
    print(
        f"  tables    : {pg.SCHEMA}.{pg.TABLE} (the live week), {pg.SCHEMA}.{pg.PRODUCTS_TABLE}, "
        f"view {pg.SCHEMA}.{pg.NAMED_VIEW} (with product names and week_start)"
    )
    if settings.postgres_url():
        print(f"  read-only : connect as a member of role {pg.APP_READER_ROLE} (docs/apps.md)")
        return
    pg.ensure_app_reader(url)  # the embedded server's superuser may create it; publishes grant on each new week
    socket_dir, database = params.get("host"), params.get("dbname") or "postgres"
    print(f"  owner     : psql -h {socket_dir} -U {params.get('user')} {database}")
    print(f"  apps      : psql -h {socket_dir} -U {pg.APP_READER_ROLE} {database}   (read-only)")
    print(f"  URL (apps): postgresql://{pg.APP_READER_ROLE}@/{database}?host={socket_dir}")
    if args.no_hold:
        return
    try:  # a signal may come as soon as the line is out
        print(
            "holding the embedded server open; Ctrl-C stops holding it (it stops when no other process holds it)",
            flush=True,
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        try:
            print("released", flush=True)
        except OSError:  # SIGHUP: the terminal is gone
            pass


def _with_default(help_text: str, default: object) -> str:
    return f"{help_text} (default: {default})"


def main(argv: list[str] | None = None) -> None:
    """Run one command. Output cut short by its reader (`show P | head -1`) ends the command
    quietly, with exit code 141 (128 + SIGPIPE, as a shell tool killed by it)."""
    try:
        try:
            _main(argv)
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader is gone: point stdout at /dev/null so Python's own flush at exit
        # does not fail again, and stop without a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(141) from None


def _main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m nbp_assets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_generate_args(p: argparse.ArgumentParser, customers: int) -> None:
        p.add_argument(
            "--customers", type=int, default=customers, help=_with_default("customers in the bank", customers)
        )
        p.add_argument(
            "--seed", type=int, default=7, help=_with_default("random seed: the same seed gives the same bank", 7)
        )
        p.add_argument("--weeks", type=int, default=8, help=_with_default("weeks of history (for backfills)", 8))

    def add_run_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--fail-on-warning",
            action="store_true",
            help="exit 3 when every week ran but a warning check failed, e.g. a fairness breach "
            "(default: off, exit 0; the breach is in the summary and has its alert)",
        )

    p = sub.add_parser("demo", help="generate a synthetic bank, materialize the latest closed week, show where to look")
    add_generate_args(p, 20_000)
    p.add_argument("--fresh", action="store_true", help=f"delete {settings.nbp_home()} first (default: keep it)")
    add_run_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("generate", help="write a synthetic bank into the local warehouse")
    add_generate_args(p, 20_000)
    p.add_argument("--end-week", help="Monday key of the last week (default: latest closed week)")
    p.add_argument(
        "--chunk-customers",
        type=int,
        help="customers generated and written at a time (default: 500,000 / weeks); "
        "memory follows the chunk, not the bank. The bank depends on it.",
    )
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("load", help="validate and load your own CSV/Parquet files (all or nothing)")
    p.add_argument("directory", help="folder with one <table>.csv or <table>.parquet per table (required, no default)")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("materialize", help="run the weekly job for one week")
    p.add_argument("--week", help="Monday key, e.g. 2026-11-09 (default: latest closed week)")
    add_run_args(p)
    p.set_defaults(func=cmd_materialize)

    p = sub.add_parser(
        "backfill", help="run the weekly job for every week from FIRST to LAST (Monday keys), oldest first"
    )
    p.add_argument("first", help="Monday key of the first week, e.g. 2026-10-05 (required, no default)")
    p.add_argument("last", help="Monday key of the last week, not before FIRST (required, no default)")
    add_run_args(p)
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser(
        "show",
        help="a customer's current top 3 (nbp_current) with product names and each signal's contribution, "
        "then the products the suitability rule withheld from them this week and why",
    )
    p.add_argument("party_id", help="the customer, e.g. P0000042 (required, no default)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "postgres",
        help="print how to connect to the apps' PostgreSQL (owner and read-only app role); "
        "holds the embedded server open until Ctrl-C",
    )
    p.add_argument(
        "--no-hold",
        action="store_true",
        help="print and exit; the embedded server stops when no other process holds it (default: hold it until Ctrl-C)",
    )
    p.set_defaults(func=cmd_postgres)

    p = sub.add_parser("check", help="validate the deployment's configuration; exit 2 with the reason if it is wrong")
    p.set_defaults(func=cmd_check)

    from nbp_assets.alerts import cli as alerts_cli  # the alerts workflow: its own module

    alerts_cli.add_parser(sub)

    # challenger simulation: its own module, which imports Dagster and pandas (~0.6 s): not
    # for the commands registered above (alerts, postgres...), whose parsers are complete.
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in sub.choices:
        from nbp_assets.simulation import approve, simulate

        simulate.add_parser(sub)
        approve.add_parser(sub)  # a simulated challenger's approval (docs/governance.md)

    p = sub.add_parser(
        "pools", help="show which runs hold the concurrency pools' slots, and since when; free a dead run's slots"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--free",
        metavar="RUN_ID",
        help="mark RUN_ID failed (if unfinished) and free its slots; refused while its process runs here "
        "(default: free nothing)",
    )
    g.add_argument(
        "--free-dead",
        action="store_true",
        help="free the slots of every run whose process is gone, what materialize does first (default: off)",
    )
    p.set_defaults(func=cmd_pools)

    if not argv or argv[0] not in sub.choices:  # imports the weekly model and Dagster: only when needed
        from nbp_assets.weekly import compile as weekly_compile  # the SQL a week runs, as files

        weekly_compile.add_parser(sub)

    from nbp_assets.offers.stream import cli as kafka_cli  # the offer stream on Kafka: its own module

    kafka_cli.add_parser(sub)

    for choice in sub._choices_actions:  # `COMMAND --help` starts with what the command does
        command = sub.choices[choice.dest]
        if command.description is None:
            command.description = choice.help
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except Refused as refused:
        print(refused, file=sys.stderr)
        raise
