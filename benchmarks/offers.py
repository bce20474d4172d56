"""Benchmark: throughput of the next-best-offer step, to set beside ksqlDB's capacity guide.

    python -m benchmarks.offers --events 1000000
    python -m benchmarks.offers --events 1000000 --end-to-end   # also one batch run on DuckDB

The offer step is what ksqlDB's two persistent queries do: join each event to its customer
(here point in time, over SCD2 versions), evaluate the rule, join the offers table. It runs
in one process on whole columns. Bytes per second count each event as the recipe's JSON
Kafka message would be (its value, as CUSTOMER_ACTIVITY_STREAM carries it), so the figure
compares with ksqlDB's guide: about 25 MB/s for a stream-table join on a 4-core server.
--end-to-end adds what a micro-batch run costs with the local warehouse: claiming the
events in SQL, reading them with the contract checked, writing the offers and the lookup.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import pandas as pd

from nbp_assets.core.settings import KAFKA_LOCAL_PARTITIONS
from nbp_assets.offers.model import DEFAULT_OFFERS_FILE, lookup, next_best_offers
from nbp_assets.offers.rules import load_rules
from nbp_assets.offers.synthetic import synthetic_stream

KSQLDB_MB_PER_S = 25.0  # ksqlDB capacity planning: stream-table join, 4 cores


def kafka_json_bytes(events: pd.DataFrame) -> int:
    """Bytes of the events as the recipe's JSON messages (pandas' serialiser, no row loop)."""
    message = pd.DataFrame(
        {
            "ACTIVITY_ID": events["activity_id"].astype("int64"),
            "IP_ADDRESS": events["ip_address"],
            "CUSTOMER_ID": events["party_id"],
            "ACTIVITY_TYPE": events["activity_type"],
            "PROPENSITY_TO_BUY": events["propensity_to_buy"],
        }
    )
    return len(message.to_json(orient="records", lines=True).encode())


def offer_step(events: pd.DataFrame, versions: pd.DataFrame, rules, offers: pd.DataFrame) -> tuple[int, int]:
    nbo, pending = next_best_offers(events, versions, rules, "bench")
    rows, _ = lookup(nbo, offers)
    return len(rows), len(pending)


def end_to_end(events: pd.DataFrame, versions: pd.DataFrame) -> None:
    """One micro-batch through Dagster on a fresh local DuckDB warehouse."""
    home = tempfile.mkdtemp(prefix="nbo-bench-")
    os.environ["NBP_HOME"] = home
    os.environ.pop("NBP_WAREHOUSE_PATH", None)
    import dagster as dg

    from nbp_assets.definitions import build_definitions
    from nbp_assets.offers import assets as nbo

    defs = build_definitions()
    wh = defs.resources["warehouse"]
    customers = versions.assign(
        jurisdiction="GB",
        segment="MASS",
        age_band="35-44",
        gender="F",
        status="ACTIVE",
        valid_to=versions.sort_values("valid_from").groupby("party_id")["valid_from"].shift(-1),
    )
    wh.replace_table("nbp_source.customers", customers)
    wh.replace_table("nbp_source.activity", events)
    with dg.instance_for_test() as instance:
        defs.resolve_job_def(nbo.TABLES_JOB).execute_in_process(instance=instance)
        started = time.perf_counter()
        result = defs.resolve_job_def(nbo.BATCH_JOB).execute_in_process(
            instance=instance, run_config=nbo.batch_run_config("nbo-00000001")
        )
        wall = time.perf_counter() - started
    steps = {
        m.asset_key.to_user_string(): m.materialization.metadata["seconds"].value
        for m in result.get_asset_materialization_events()
    }
    print(
        f"end to end (DuckDB {home}): run {'succeeded' if result.success else 'FAILED'} in {wall:.1f} s; "
        f"next_best_offer step {steps.get('next_best_offer', float('nan')):.1f} s, "
        f"next_best_offer_lookup step {steps.get('next_best_offer_lookup', float('nan')):.1f} s; "
        f"{len(events) / wall:,.0f} events/s for the whole run"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.offers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions; the best is reported")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end-to-end", action="store_true", help="also run one micro-batch on a local DuckDB")
    parser.add_argument(
        "--kafka",
        action="store_true",
        help="the stream processor on a Kafka broker on this machine: "
        "latency at 1,000 and 10,000 events/s and the sustained throughput (stream/bench.py)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="--kafka: seconds fed at each rate")
    parser.add_argument("--bootstrap-servers", help="--kafka: an existing cluster (default: start a local tansu)")
    parser.add_argument(
        "--partitions",
        type=int,
        default=KAFKA_LOCAL_PARTITIONS,
        help=f"--kafka: partitions of the benchmark's topics (default {KAFKA_LOCAL_PARTITIONS}, the fastest on one "
        "machine; the recipe and a real cluster have 6)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="--kafka: processor processes (`kafka process --workers N`), at most --partitions",
    )
    args = parser.parse_args(argv)
    if args.kafka:
        from benchmarks.offers_kafka import run

        events, versions = synthetic_stream(args.events, args.customers, args.seed)
        run(
            events,
            versions,
            backlog=args.events,
            seconds=args.seconds,
            bootstrap_servers=args.bootstrap_servers,
            partitions=args.partitions,
            workers=args.workers,
        )
        return

    events, versions = synthetic_stream(args.events, args.customers, args.seed)
    rules, offers = load_rules(), pd.read_csv(DEFAULT_OFFERS_FILE)
    size = kafka_json_bytes(events)
    timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        offered, pending = offer_step(events, versions, rules, offers)
        timings.append(time.perf_counter() - started)
    best = min(timings)
    print(
        f"offer step: {args.events:,} events, {args.customers:,} customers ({len(versions):,} versions), "
        f"{os.cpu_count()} cores, one process"
    )
    print(f"  {offered:,} offered, {pending:,} pending (no customer record)")
    print(
        f"  best of {args.repeat}: {best:.2f} s  ->  {args.events / best:,.0f} events/s, "
        f"{size / best / 1e6:,.1f} MB/s of recipe JSON ({size / args.events:.0f} bytes/event)"
    )
    print(
        f"  ksqlDB guide: ~{KSQLDB_MB_PER_S:.0f} MB/s for a stream-table join on 4 cores "
        f"= ~{KSQLDB_MB_PER_S * 1e6 / (size / args.events):,.0f} events/s at this message size"
    )
    if args.end_to_end:
        end_to_end(events, versions)


if __name__ == "__main__":
    main()
