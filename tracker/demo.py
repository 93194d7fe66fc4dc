"""``tracker demo``: a broker, a worker in the background, the seed events, the signals table.

The demo records where it runs in its data dir (``tracker.demo_record``): the CLI's other
commands then reach its topics and worker, and running the demo again (say with a new
``TRACKER_WEBHOOK_ALLOW``) restarts the worker on the same topics, keeping what was published.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

from tracker.core.decode import split_records
from tracker.core.events import Event
from tracker.core.routing import series_of
from tracker.demo_record import DEMO_RECORD, DemoRecord
from tracker.errors import PublishError, TrackerError
from tracker.kafka.broker import LocalBroker
from tracker.kafka.lag import fold_lag
from tracker.kafka.publisher import Publisher
from tracker.kafka.topics import ensure_topics
from tracker.polling import http_json, wait_until
from tracker.progress import Progress
from tracker.report import alerts_report, render, signals_report
from tracker.rules_file import build_router
from tracker.settings import Settings
from tracker.worker.launch import WorkerProcess, start_worker, stop_detached

__all__ = ["DEMO_EVENTS", "run_demo", "stop_demo"]

#: What ``tracker demo`` publishes: the seed article, one fact of each contract v2 shape, and the
#: exchange rates those need (none of the v2 samples fires an alert: the seed's three stay the only ones).
DEMO_EVENTS = (
    "events/samples/seed.jsonl",
    "events/samples/contract-v2.jsonl",
    "events/samples/fx-rates.jsonl",
)


def _pid_file(settings: Settings) -> Path:
    return settings.data_dir / "demo-worker.pid"


def _stop_worker(settings: Settings) -> None:
    pid_file = _pid_file(settings)
    if not pid_file.exists():
        return
    stop_detached(int(pid_file.read_text()), grace=15)
    pid_file.unlink()
    print("previous demo worker stopped")


def stop_demo(settings: Settings) -> None:
    """Stop the demo worker, then the local broker (the record stays: the next demo resumes its topics)."""
    _stop_worker(settings)
    record = DemoRecord.read(settings.data_dir)
    if record is not None:
        settings = record.applied(settings)
    if settings.uses_local_broker:
        LocalBroker.configured(settings).stop()
        print("kafka stopped")


def _start_worker(settings: Settings, data_dir: Path) -> WorkerProcess:
    # Every setting, the demo's prefix and broker included: the worker must not read the record itself.
    worker = start_worker(
        settings.model_copy(update={"data_dir": data_dir / "demo-worker"}), data_dir / "demo-worker.log"
    )
    # The worker outlives this command: the next demo, or `tracker demo --stop`, stops it by its pid.
    _pid_file(settings).write_text(f"{worker.pid}\n")
    return worker


def _resumed(settings: Settings, record: DemoRecord | None) -> Settings | None:
    """Return the recorded demo's settings under the user's new ones, or None if it ran on another broker."""
    if record is None:
        return None
    resumed = record.applied(settings)
    if (resumed.kafka_bootstrap, resumed.kafka_port) != (record.kafka_bootstrap, record.kafka_port):
        return None  # the user points at another broker: the recorded topics are not there
    # The topics exist with their prefix and partition count: those are the demo's, whatever is set.
    return resumed.model_copy(update={"topic_prefix": record.topic_prefix, "partitions": record.partitions})


def _read_events(paths: list[Path]) -> list[Event]:
    events: list[Event] = []
    for path in paths:
        records = list(split_records(path.read_bytes()))
        if any(record.event is None for record in records):
            raise TrackerError(f"{path} has invalid records: run `tracker publish {path}`")
        events.extend(record.event for record in records if record.event is not None)
    return events


def _publish(settings: Settings, events: list[Event]) -> None:
    progress = Progress(f"publishing to {settings.events_topic}", total=len(events))

    async def publish() -> None:
        async with Publisher(settings, build_router(settings)) as publisher:
            for receipt in await publisher.publish(events, progress.update):
                if isinstance(receipt, PublishError):
                    raise receipt

    try:
        asyncio.run(publish())
    finally:
        progress.close()


def _command() -> str:
    """Return how the user runs ``tracker`` from here: the venv's script by its relative path if not on PATH."""
    script = Path(sys.executable).parent / "tracker"
    if shutil.which("tracker") == str(script):
        return "tracker"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _next_steps(base: str, record: Path) -> str:
    tracker = _command()
    return f"""try next:
  {base}/                      the tracker's page in a browser
  {tracker} facts --entity bytedance
  {tracker} history market_usage --label entity=bytedance --label metric=tokens_per_day
  {tracker} signals market_usage --as-of 2025-11-15
  {tracker} fact seed-09-bytedance-tokens-2025-12
  {tracker} retract seed-09-bytedance-tokens-2025-12 --reason "figure misread" --source "my notes"
  {tracker} publish my-fact.jsonl       (one JSON object per line; see events/README.md)
  {tracker} alerts
  curl '{base}/v1/facts?entity=bytedance'
  metrics for Prometheus: {base}/metrics
These commands use the demo's topics and worker (recorded in {record}).
The broker and the worker keep running; stop them with `make stop` (tracker demo --stop).
Run `make demo` again with other TRACKER_* settings to restart the worker on the same facts."""


def run_demo(
    settings: Settings, events_paths: list[Path] | None, default_events: list[Path], fresh: bool = False
) -> int:
    """Run the whole demo, resuming the last one's topics unless ``fresh``; return the exit status."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _stop_worker(settings)
    record = None if fresh else DemoRecord.read(settings.data_dir)
    resumed = _resumed(settings, record)
    # A first run gets topics of its own (a fresh prefix): the demo starts from an empty log.
    demo = resumed or settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}demo-{int(time.time())}-"})
    print(f"page: http://{demo.http_host}:{demo.http_port}/ (charts, facts and alerts, once the demo is up)")
    if demo.uses_local_broker:
        broker = LocalBroker.configured(demo)
        print(f"starting kafka on {broker.bootstrap_servers} (first run downloads it with Maven) ...")
        broker.start(timeout=120)
    asyncio.run(ensure_topics(demo))
    # Seeded topics are not seeded again: the facts are there, and ids make a second copy a no-op anyway.
    seeded = resumed is not None and record is not None and record.seeded
    to_publish = _read_events(events_paths if events_paths is not None else ([] if seeded else default_events))
    DemoRecord.of(demo, seeded=seeded or bool(to_publish)).write(settings.data_dir)
    worker = _start_worker(demo, settings.data_dir)
    base = f"http://{demo.http_host}:{demo.http_port}"
    print(f"worker starting on {base} (log: {worker.log}) ...")
    worker.wait_ready(timeout=90)
    if resumed is not None:
        print(f"resumed the demo on {demo.events_topic} (what was published before is kept)")
    if to_publish:
        _publish(demo, to_publish)
        print(f"published {len(to_publish)} events to {demo.events_topic}; folding ...")
    if resumed is None:
        # Retractions and exchange rates belong to no series: each partition folds its own copy.
        expected = sum(demo.partitions if series_of(e) is None else 1 for e in to_publish)
        check = lambda: http_json(f"{base}/healthz")["folded"] >= expected  # noqa: E731
    else:
        # Folded counts only this worker's records: a resumed log is caught up when nothing is left to commit.
        check = lambda: asyncio.run(fold_lag(demo, demo.faust_app_id)) == 0  # noqa: E731
    wait_until("the worker to fold every event", check, timeout=60)
    print()
    # The CLI's token (TRACKER_API_TOKEN): reads may be closed to anonymous callers.
    token = demo.api_token.get_secret_value() if demo.api_token is not None else None
    print(render(signals_report(http_json(f"{base}/v1/signals", token=token), "no signals yet"), "table"))
    print()
    alerts = http_json(f"{base}/v1/alerts", token=token)
    print(f"active alerts ({len(alerts['alerts'])}):")
    if alerts["alerts"]:
        print(render(alerts_report(alerts, ""), "table"))
    print()
    print(_next_steps(base, settings.data_dir / DEMO_RECORD))
    return 0
