"""Commands that run things: the local broker, a worker, publishing, the demo, schemas, dashboards, the benchmark."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from tracker.cli import common
from tracker.cli.common import EXIT_REJECTED, EXIT_UNAVAILABLE, failures
from tracker.core.decode import Record, split_records
from tracker.errors import InputFormatError
from tracker.settings import Settings

__all__ = ["register"]


def cmd_kafka(settings: Settings, args: argparse.Namespace) -> int:
    """Start, stop or report the local single-node broker."""
    from tracker.kafka.broker import LocalBroker

    if not settings.uses_local_broker:
        print(f"TRACKER_KAFKA_BOOTSTRAP is set ({settings.kafka_bootstrap}): nothing to provision")
        return 0
    broker = LocalBroker.configured(settings)
    if args.action == "start":
        status = broker.start()
        print(f"kafka running on {broker.bootstrap_servers} (pid {status.pid})")
    elif args.action == "stop":
        broker.stop()
        print("kafka stopped")
    else:
        status = broker.status()
        print(f"kafka running on {broker.bootstrap_servers} (pid {status.pid})" if status.running else "kafka stopped")
        return 0 if status.running else 3
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Run one worker in the foreground until interrupted."""
    from tracker.kafka.topics import ensure_topics
    from tracker.worker.app import build_worker
    from tracker.worker.process import QuietWorker, tune_garbage_collector

    asyncio.run(ensure_topics(settings))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = build_worker(settings)
    tune_garbage_collector()
    QuietWorker(worker.app, loglevel=settings.log_level.upper(), quiet=True).execute_from_commandline()
    return 0


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def _report_rejections(records: Sequence[Record]) -> int:
    rejected = 0
    for record in records:
        if record.event is None:
            rejected += 1
            for error in record.errors:
                print(f"line {record.line}: {error}", file=sys.stderr)
    return rejected


def cmd_publish(settings: Settings, args: argparse.Namespace) -> int:
    """Validate a JSON Lines file or a JSON array, then publish the valid records."""
    from tracker.kafka.publisher import Receipt

    try:
        records = list(split_records(_read_input(args.path)))
    except (InputFormatError, OSError) as exc:
        print(f"{args.path}: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    rejected = _report_rejections(records)
    valid = [record.event for record in records if record.event is not None]
    if rejected and args.strict:
        print(f"--strict: {rejected} invalid record(s), nothing published", file=sys.stderr)
        return EXIT_REJECTED
    receipts = common.publish_events(settings, valid)
    failed = failures(receipts)
    for error in failed:
        print(f"failed: {error}", file=sys.stderr)
    for receipt in receipts:
        if isinstance(receipt, Receipt) and args.verbose:
            print(f"{receipt.event_id}\tpartition={receipt.partition}\toffset={receipt.offset}")
    published = len(receipts) - len(failed)
    print(f"published {published}, rejected {rejected}, failed {len(failed)} -> {settings.events_topic}")
    if failed:
        return EXIT_UNAVAILABLE
    return EXIT_REJECTED if rejected else 0


def cmd_schema(settings: Settings, args: argparse.Namespace) -> int:
    """Write (or check) the JSON Schema of every event type."""
    from tracker.schema import stale_schemas, write_schemas

    directory = Path(args.out)
    if args.check:
        stale = stale_schemas(directory)
        for name in stale:
            print(f"{directory / name} is stale: run `tracker schema`", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas(directory):
        print(path)
    return 0


def cmd_dashboards(settings: Settings, args: argparse.Namespace) -> int:
    """Write (or check) the Grafana dashboards generated from code."""
    from tracker.monitoring.__main__ import main as dashboards_main

    return dashboards_main(["--out", args.out, *(["--check"] if args.check else [])])


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Start broker and worker, publish the seed events, print the signals."""
    from tracker.demo import DEMO_EVENTS, run_demo, stop_demo

    if args.stop:
        stop_demo(settings)
        return 0
    events = [Path(path) for path in args.events] if args.events else None
    return run_demo(settings, events, default_events=[Path(path) for path in DEMO_EVENTS], fresh=args.fresh)


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    """Run the benchmark on the configured broker and print the figures."""
    from tracker.bench.runner import BenchOptions, run_bench

    if args.in_process:
        from tracker.bench.inprocess import fold_in_process

        print(fold_in_process(settings, args.events, args.entities, seed=1).table())
        return 0
    if settings.uses_local_broker:
        from tracker.kafka.broker import LocalBroker

        LocalBroker.configured(settings).start(timeout=120)
    sizes = tuple(int(size) for size in args.memory_sizes.split(",") if size) if args.memory_sizes else ()
    options = BenchOptions(
        events=args.events,
        entities=args.entities,
        memory_sizes=sizes,
        quick=args.quick,
        latency_seconds=args.latency_seconds,
    )
    report = run_bench(settings, options, Path(args.json) if args.json else None)
    print(report.table())
    return 0


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the commands that run things."""
    kafka = commands.add_parser("kafka", help="run the local single-node Kafka broker (KRaft)")
    kafka.add_argument("action", choices=["start", "stop", "status"], help="what to do with the broker")
    kafka.set_defaults(run=cmd_kafka)

    worker = commands.add_parser(
        "worker", help="run one worker: fold events, serve /metrics and /v1/* on TRACKER_HTTP_PORT"
    )
    worker.set_defaults(run=cmd_worker)

    publish = commands.add_parser("publish", help="validate and publish events from a file or stdin")
    publish.add_argument("path", help="JSON Lines file or JSON array; '-' reads stdin")
    publish.add_argument("--strict", action="store_true", help="publish nothing unless every record is valid")
    publish.add_argument("-v", "--verbose", action="store_true", help="print id, partition and offset of each")
    publish.set_defaults(run=cmd_publish, demo_aware=True)

    demo = commands.add_parser("demo", help="broker + worker + seed events, then print the signals")
    demo.add_argument(
        "--events",
        action="append",
        help="events to publish (repeat for several files); default, on the demo's first run: the seed, the "
        "contract v2 samples and their exchange rates in events/samples/",
    )
    demo.add_argument(
        "--fresh", action="store_true", help="start over on new topics instead of the ones the last demo used"
    )
    demo.add_argument("--stop", action="store_true", help="stop the demo worker and broker")
    demo.set_defaults(run=cmd_demo)

    dashboards = commands.add_parser("dashboards", help="write the Grafana dashboards generated from code")
    dashboards.add_argument("--out", default="deploy/grafana/dashboards", help="directory to write into")
    dashboards.add_argument("--check", action="store_true", help="fail if the files differ from the generator")
    dashboards.set_defaults(run=cmd_dashboards)

    bench = commands.add_parser("bench", help="measure ingest, fold, latency, recovery and memory against ceilings")
    bench.add_argument("--events", type=int, default=200_000, help="synthetic events to generate")
    bench.add_argument("--entities", type=int, default=10_000, help="distinct entities in the workload")
    bench.add_argument("--memory-sizes", default="", help="comma-separated N to measure peak RSS at, e.g. 20000,200000")
    bench.add_argument("--latency-seconds", type=float, default=10.0, help="length of the 1,000 events/s latency run")
    bench.add_argument("--quick", action="store_true", help="correctness and fold only (the CI smoke test)")
    bench.add_argument(
        "--in-process", action="store_true", help="fold with no Kafka, in records per CPU second (no broker needed)"
    )
    bench.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    bench.set_defaults(run=cmd_bench)

    schema = commands.add_parser("schema", help="write the JSON Schema of each event type")
    schema.add_argument("--out", default="events/schema", help="directory to write into")
    schema.add_argument("--check", action="store_true", help="fail if the files differ from the models")
    schema.set_defaults(run=cmd_schema)
