"""``tracker demo``: a broker, a worker in the background, the seed events, the signals table."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tracker.core.decode import split_records
from tracker.core.events import Event
from tracker.core.routing import series_of
from tracker.errors import PublishError, TrackerError
from tracker.kafka.publisher import Publisher
from tracker.kafka.topics import ensure_topics
from tracker.rules_file import build_router
from tracker.settings import Settings

__all__ = ["DEMO_EVENTS", "http_json", "run_demo", "stop_demo", "wait_until"]

#: What ``tracker demo`` publishes: the seed article, one fact of each contract v2 shape, and the
#: exchange rates those need (none of the v2 samples fires an alert: the seed's three stay the only ones).
DEMO_EVENTS = (
    "events/samples/seed.jsonl",
    "events/samples/contract-v2.jsonl",
    "events/samples/fx-rates.jsonl",
)


def http_json(url: str, timeout: float = 5.0, token: str | None = None) -> Any:
    """GET a URL (with a bearer token if given) and decode its JSON body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
        return json.loads(response.read())


def wait_until(what: str, check: Any, timeout: float, interval: float = 0.25) -> Any:
    """Call ``check`` until it returns something truthy; raise TrackerError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except (OSError, urllib.error.URLError, ValueError):
            result = None
        if result:
            return result
        time.sleep(interval)
    raise TrackerError(f"timed out after {timeout:.0f}s waiting for {what}")


def _pid_file(settings: Settings) -> Path:
    return settings.data_dir / "demo-worker.pid"


def _stop_worker(settings: Settings) -> None:
    pid_file = _pid_file(settings)
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(150):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink()
    print("previous demo worker stopped")


def stop_demo(settings: Settings) -> None:
    """Stop the demo worker, then the local broker."""
    _stop_worker(settings)
    if settings.uses_local_broker:
        from tracker.kafka.broker import LocalBroker

        LocalBroker(
            data_dir=settings.data_dir / "kafka",
            port=settings.kafka_port,
            cache_dir=settings.cache_dir,
            kafka_version=settings.kafka_version,
        ).stop()
        print("kafka stopped")


def _start_worker(settings: Settings) -> int:
    env = {
        **os.environ,
        "TRACKER_TOPIC_PREFIX": settings.topic_prefix,
        "TRACKER_HTTP_PORT": str(settings.http_port),
        "TRACKER_DATA_DIR": str(settings.data_dir / "demo-worker"),
    }
    log = (settings.data_dir / "demo-worker.log").open("ab")
    child = subprocess.Popen(
        [sys.executable, "-m", "tracker", "worker"],
        env=env,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    _pid_file(settings).write_text(f"{child.pid}\n")
    return child.pid


def _print_signals(signals: list[dict[str, Any]]) -> None:
    rows = [(s["name"], ",".join(f"{k}={v}" for k, v in s["labels"].items()), f"{s['value']:.6g}") for s in signals]
    widths = [max(len(row[i]) for row in [*rows, ("signal", "labels", "value")]) for i in range(3)]
    print(f"{'signal':<{widths[0]}}  {'labels':<{widths[1]}}  {'value':>{widths[2]}}")
    for name, labels, value in rows:
        print(f"{name:<{widths[0]}}  {labels:<{widths[1]}}  {value:>{widths[2]}}")


def run_demo(settings: Settings, events_paths: list[Path]) -> int:
    """Run the whole demo; return the exit status."""
    print(f"page: http://{settings.http_host}:{settings.http_port}/ (charts, facts and alerts, once the demo is up)")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _stop_worker(settings)
    if settings.uses_local_broker:
        from tracker.kafka.broker import LocalBroker

        broker = LocalBroker(
            data_dir=settings.data_dir / "kafka",
            port=settings.kafka_port,
            cache_dir=settings.cache_dir,
            kafka_version=settings.kafka_version,
        )
        print(f"starting kafka on {broker.bootstrap_servers} (first run downloads it with Maven) ...")
        broker.start(timeout=120)
    # A fresh topic prefix per run: the demo always starts from an empty log.
    demo = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}demo-{int(time.time())}-"})
    asyncio.run(ensure_topics(demo))
    _start_worker(demo)
    base = f"http://{demo.http_host}:{demo.http_port}"
    print(f"worker starting on {base} (log: {settings.data_dir / 'demo-worker.log'}) ...")
    wait_until(
        "the worker to own every partition",
        lambda: len(http_json(f"{base}/healthz")["partitions"]) == demo.partitions,
        timeout=90,
    )

    events: list[Event] = []
    for events_path in events_paths:
        records = list(split_records(events_path.read_bytes()))
        events.extend(record.event for record in records if record.event is not None)
        if any(record.event is None for record in records):
            raise TrackerError(f"{events_path} has invalid records: run `tracker publish {events_path}`")

    async def publish() -> None:
        async with Publisher(demo, build_router(demo)) as publisher:
            for receipt in await publisher.publish(events):
                if isinstance(receipt, PublishError):
                    raise receipt

    asyncio.run(publish())
    # Retractions and exchange rates belong to no series: each partition folds its own copy.
    expected = sum(demo.partitions if series_of(e) is None else 1 for e in events)
    print(f"published {len(events)} events to {demo.events_topic}; folding ...")
    wait_until(
        "the worker to fold every event",
        lambda: http_json(f"{base}/healthz")["folded"] >= expected,
        timeout=60,
    )
    print()
    # The CLI's token (TRACKER_API_TOKEN): reads may be closed to anonymous callers.
    token = demo.api_token.get_secret_value() if demo.api_token is not None else None
    signals = http_json(f"{base}/v1/signals", token=token)["signals"]
    _print_signals(sorted(signals, key=lambda s: (s["name"], sorted(s["labels"].items()))))
    print()
    alerts = http_json(f"{base}/v1/alerts", token=token)["alerts"]
    print(f"active alerts ({len(alerts)}):")
    for alert in alerts:
        summary = alert["annotations"].get("summary", "")
        print(f"  [{alert['severity']}] {alert['rule']} ({alert['state']} since {alert['since']}): {summary}")
    print()
    print(f"metrics: {base}/metrics   signals: {base}/v1/signals   alerts: {base}/v1/alerts")
    print("the broker and the worker keep running; stop them with `make stop` (tracker demo --stop)")
    return 0
