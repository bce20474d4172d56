"""`python -m nbp_assets kafka ...`: the offer stream's commands (registered by nbp_assets/cli.py).

kafka broker    run a local tansu broker on 127.0.0.1 (dev only: memory storage; needs the dev extra)
kafka topics    create the recipe's topics that are missing
kafka process   the stream processor (long-running): activity events in, offers out
kafka sink      the warehouse sink (long-running): NEXT_BEST_OFFER and its LOOKUP -> their tables, deduplicated
kafka status    consumer lag of the processor and the sink, and events waiting for a customer
"""

from __future__ import annotations

import argparse
import time


def _settings(args):
    from nbp_assets.offers.stream.config import KafkaSettings

    return KafkaSettings.from_env(getattr(args, "bootstrap_servers", None))


def cmd_broker(args: argparse.Namespace) -> None:
    import signal

    from nbp_assets.core.settings import KAFKA_LOCAL_PARTITIONS
    from nbp_assets.offers.stream.broker import start_broker

    broker = start_broker(args.port)
    print(
        f"tansu broker pid {broker.pid} on {broker.bootstrap_servers} (memory storage: everything is lost when "
        f"it stops)\n  export NBP_KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}"
        f"\n  export NBP_KAFKA_PARTITIONS={KAFKA_LOCAL_PARTITIONS}  # fastest on one machine (docs/next-best-offer.md)",
        flush=True,
    )
    stop = []
    # SIGTERM too: started in the background (no job control) a process ignores SIGINT
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    try:
        while broker.process.poll() is None and not stop:
            time.sleep(0.2)
    finally:
        broker.stop()
    print(f"tansu broker pid {broker.pid} stopped", flush=True)


def cmd_topics(args: argparse.Namespace) -> None:
    from nbp_assets.offers.stream.topics import ensure_topics

    cfg = _settings(args)
    created = ensure_topics(cfg.admin(), cfg.topic_prefix, cfg.partitions, cfg.replication)
    print(f"created: {', '.join(created) or 'none (all exist)'}")


def cmd_process(args: argparse.Namespace) -> None:
    from nbp_assets.offers.stream.processor import serve, serve_workers

    if args.workers < 1:
        raise SystemExit(f"--workers {args.workers}: at least 1")
    if args.workers == 1:  # in this process: a SIGKILL of this pid is a crash of the processor
        serve(_settings(args), max_batch=args.max_batch, report_every=args.report_every)
        return
    code = serve_workers(_settings(args), args.workers, max_batch=args.max_batch, report_every=args.report_every)
    if code:
        raise SystemExit(code)


def cmd_sink(args: argparse.Namespace) -> None:
    from nbp_assets.offers.stream.sink import serve
    from nbp_assets.resources import open_warehouse

    serve(_settings(args), open_warehouse(), interval=args.interval)


def cmd_status(args: argparse.Namespace) -> None:
    from nbp_assets.offers.stream import topics as t
    from nbp_assets.offers.stream.lag import consumer_lag, waiting_events
    from nbp_assets.offers.stream.sink import sink_group

    cfg = _settings(args)
    for group, topic in ((cfg.group, t.ACTIVITY), (sink_group(cfg), t.NBO), (sink_group(cfg), t.LOOKUP)):
        lag = consumer_lag(cfg, group, t.name(topic, cfg.topic_prefix))
        print(f"{group} on {topic}: lag {sum(lag.values()):,} {lag}")
    waiting = waiting_events(cfg)
    print(f"events waiting for a customer record: {sum(waiting.values()):,} of {len(waiting):,} customer(s)")


def add_parser(sub) -> None:
    p = sub.add_parser("kafka", help="the next-best-offer stream on Kafka: broker (dev), topics, process, sink, status")
    ks = p.add_subparsers(dest="kafka_command", required=True)
    b = ks.add_parser("broker", help="run a local tansu broker on 127.0.0.1 (dev/test only)")
    b.add_argument("--port", type=int, default=None, help="default: a free port")
    b.set_defaults(func=cmd_broker)
    for name, func, text in (
        ("topics", cmd_topics, "create the recipe's missing topics"),
        ("process", cmd_process, "run the stream processor until SIGTERM/SIGINT"),
        ("sink", cmd_sink, "run the warehouse sink until interrupted"),
        ("status", cmd_status, "consumer lag and waiting events"),
    ):
        q = ks.add_parser(name, help=text)
        q.add_argument("--bootstrap-servers", help="default: NBP_KAFKA_BOOTSTRAP_SERVERS")
        q.set_defaults(func=func)
        if name == "process":
            q.add_argument("--max-batch", type=int, default=20_000, help="most events per micro-batch (default: 20000)")
            q.add_argument(
                "--report-every", type=float, default=10.0, help="seconds between status lines (default: 10)"
            )
            q.add_argument(
                "--workers",
                type=int,
                default=1,
                help="processor processes in the consumer group, at most the activity topic's partitions (default: 1)",
            )
        if name == "sink":
            q.add_argument(
                "--interval", type=float, default=5.0, help="seconds a micro-batch waits for messages (default: 5)"
            )
