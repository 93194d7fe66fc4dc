"""What the fault-injection tests share: the pure fold of a topic, comparisons, a broker of their own, figures.

The reference for "nothing lost, nothing double counted" is always the pure
fold (``tracker.core.fold.Projection``) of the whole events topic read back
from offset 0: whatever the broker holds is what the state must reflect.
Each fault test writes what it measured to ``docs/reliability-figures.json``
(one entry per test, merged), which ``docs/reliability.md`` tabulates.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from tests.conftest import ROOT, free_port_pair
from tests.integration.helpers import scrape
from tests.integration.kafka_helpers import read_topic
from tracker.core.alerts import evaluate
from tracker.core.decode import decode_event
from tracker.core.events import Event, EventRetracted
from tracker.core.fold import Projection
from tracker.core.signals import derive_signals
from tracker.errors import BrokerError, EventValidationError
from tracker.kafka.broker import LocalBroker
from tracker.kafka.publisher import BROADCAST_HEADER
from tracker.polling import http_json
from tracker.rules_file import build_router, load_rules
from tracker.settings import Settings

FIGURES = ROOT / "docs" / "reliability-figures.json"

SignalKey = tuple[str, tuple[tuple[str, str], ...]]
AlertKey = tuple[str, str, str, str, tuple[str, ...]]


# -- figures ---------------------------------------------------------------------------------


def record_figures(fault: str, figures: dict[str, Any]) -> None:
    """Merge one test's figures into docs/reliability-figures.json (keyed by ``fault``)."""
    try:
        document = json.loads(FIGURES.read_text())
    except (OSError, json.JSONDecodeError):
        document = {}
    document["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()}
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    document.setdefault("faults", {})[fault] = {"measured_at": stamp, **figures}
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


# -- the pure reference ----------------------------------------------------------------------


@dataclass
class Reference:
    """The pure fold of a topic: its records, the decoded events, signals and alerts."""

    records: list[ConsumerRecord[bytes, bytes]]
    events: list[Event]
    invalid: int
    signals: dict[SignalKey, float]
    alerts: set[AlertKey]
    firing: set[frozenset[tuple[str, str]]]

    def ids(self) -> Iterator[tuple[str, int, int, bool]]:
        """Yield (event id, partition, offset, is a broadcast copy) of every decodable record."""
        for record in self.records:
            with contextlib.suppress(EventValidationError):
                # A record with no value decodes like an empty one: refused.
                event_id = decode_event(record.value or b"").event_id
                yield event_id, record.partition, record.offset, BROADCAST_HEADER in list(record.headers or ())


def pure_fold(settings: Settings, at_least: int = 0, timeout: float = 60) -> Reference:
    """Read the whole events topic from offset 0 and fold it with the pure Projection."""
    records = read_topic(settings, settings.events_topic, at_least=at_least, timeout=timeout)
    events: list[Event] = []
    invalid = 0
    for record in records:
        try:
            events.append(decode_event(record.value or b""))
        except EventValidationError:
            invalid += 1
    router = build_router(settings)
    rules = load_rules(settings.rules_path)
    state = Projection(router).replay(events).state
    signals = {(s.name, tuple(sorted(s.labels))): s.value for s in derive_signals(router, state)}
    groups: dict[str, dict[str, Any]] = defaultdict(dict)
    for key, value in state.items():
        if not key.startswith("#"):
            groups[key.partition("/")[0]][key] = value
    alerts = {}
    for group in groups.values():
        alerts.update(evaluate(rules, router, group))
    alert_keys = {(a.fingerprint, a.rule, a.state, a.since, tuple(a.cause_ids)) for a in alerts.values()}
    firing = {frozenset({**a.labels, "alertname": a.rule}.items()) for a in alerts.values() if a.state == "firing"}
    return Reference(records, events, invalid, signals, alert_keys, firing)


def records_per_event(events: Iterable[Event], partitions: int) -> int:
    """Return how many topic records the publisher writes for ``events`` (a retraction: one per partition)."""
    return sum(partitions if isinstance(event, EventRetracted) else 1 for event in events)


# -- what a worker shows ---------------------------------------------------------------------


def worker_signals(url: str) -> dict[SignalKey, float]:
    """Return every signal of GET /v1/signals keyed by (name, sorted labels)."""
    document = http_json(f"{url}/v1/signals", 120)
    return {(s["name"], tuple(sorted(s["labels"].items()))): float(s["value"]) for s in document["signals"]}


def worker_alerts(url: str) -> set[AlertKey]:
    """Return the alerts of GET /v1/alerts as (fingerprint, rule, state, since, cause ids)."""
    document = http_json(f"{url}/v1/alerts", 60)
    return {(a["fingerprint"], a["rule"], a["state"], a["since"], tuple(a["cause_ids"])) for a in document["alerts"]}


def market_samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Return the market_* samples of a worker's /metrics."""
    return {key: value for key, value in scrape(url).items() if key[0].startswith("market_")}


def expected_samples(reference: Reference) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Return the market_* samples a complete set of workers must export for ``reference``."""
    samples = {(name, frozenset(labels)): value for (name, labels), value in reference.signals.items()}
    for labels in reference.firing:
        samples[("market_alert_firing", labels)] = 1.0
    return samples


def count_differences(expected: dict[Any, float], actual: dict[Any, float]) -> int:
    """Return how many keys are missing, extra, or carry a different value."""
    different = sum(
        1
        for key in set(expected) & set(actual)
        if not math.isclose(expected[key], actual[key], rel_tol=1e-9, abs_tol=1e-12)
    )
    return len(set(expected) ^ set(actual)) + different


def signal_differences(expected: dict[Any, float], actual: dict[Any, float], limit: int = 5) -> list[str]:
    """Describe how two signal maps differ (missing, extra, different value); empty when equal."""
    problems = []
    missing = sorted(set(expected) - set(actual), key=str)
    extra = sorted(set(actual) - set(expected), key=str)
    if missing:
        problems.append(f"{len(missing)} missing, e.g. {missing[:limit]}")
    if extra:
        problems.append(f"{len(extra)} extra, e.g. {extra[:limit]}")
    different = [
        (key, expected[key], actual[key])
        for key in sorted(set(expected) & set(actual), key=str)
        if not math.isclose(expected[key], actual[key], rel_tol=1e-9, abs_tol=1e-12)
    ]
    if different:
        problems.append(f"{len(different)} different (key, pure, worker), e.g. {different[:limit]}")
    return problems


# -- offsets ---------------------------------------------------------------------------------


def fold_group(settings: Settings) -> str:
    """Return the consumer group of the fold agent (the Faust app id)."""
    return f"{settings.topic_prefix}{settings.app_id}"


def fold_progress(settings: Settings) -> tuple[dict[int, int], dict[int, int]]:
    """Return (end offsets, offsets committed by the fold's group) of the events topic."""

    async def run() -> tuple[dict[int, int], dict[int, int]]:
        # Never subscribes, so it never joins (or disturbs) the group.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap, group_id=fold_group(settings), enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(settings.events_topic, p) for p in range(settings.partitions)]
            ends = await consumer.end_offsets(partitions)
            committed = {tp.partition: (await consumer.committed(tp)) or 0 for tp in partitions}
            return {tp.partition: offset for tp, offset in ends.items()}, committed
        finally:
            await consumer.stop()

    return asyncio.run(asyncio.wait_for(run(), timeout=60))


def health_or_none(url: str) -> dict[str, Any] | None:
    """Return a worker's /healthz, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return dict(json.loads(response.read()))
    except (OSError, ValueError):
        return None


# -- a broker of one's own -------------------------------------------------------------------


@dataclass
class OwnBroker:
    """A single-node broker only this test uses, so that it can be stopped and started again."""

    broker: LocalBroker

    @classmethod
    def started(cls, data_dir: Path, attempts: int = 3) -> OwnBroker:
        """Start a broker on a free port pair (another pair if someone took one meanwhile)."""
        for attempt in range(1, attempts + 1):
            own = cls(LocalBroker(data_dir=data_dir / f"attempt-{attempt}", port=free_port_pair()))
            try:
                own.start()
            except BrokerError:
                own.stop()
                if attempt == attempts:
                    raise
                continue
            return own
        raise AssertionError("unreachable")

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    def start(self, timeout: float = 120) -> float:
        """Start (or restart, same data dir and ports) and return the seconds it took to answer."""
        started = time.monotonic()
        self.broker.start(timeout=timeout)
        return time.monotonic() - started

    def stop(self) -> float:
        """Stop gracefully (SIGTERM) and return the seconds it took."""
        started = time.monotonic()
        self.broker.stop()
        return time.monotonic() - started
