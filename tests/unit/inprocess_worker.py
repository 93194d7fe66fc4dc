"""A worker's HTTP routes served in-process: the real handlers over tables folded in memory, no Faust, no Kafka.

Records are routed as the publisher routes them and folded by the worker's own
``BatchFolder`` and ``Alerting`` into plain dicts; the events topic is a dict
of (partition, offset) to record; the publisher behind ``POST /v1/events``
records what it was given and acknowledges it. Everything else is the
production code: ``install_routes`` on a plain ``aiohttp.web.Application``,
the HTTP guard, ``Reads``, an unstarted ``Notifications``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from tracker.bench.inprocess import MemoryFold, route
from tracker.bench.workload import Workload
from tracker.core.events import Event
from tracker.errors import PublishError
from tracker.kafka.publisher import Receipt, encode_event
from tracker.rules_file import build_router, load_rules
from tracker.settings import Settings
from tracker.worker.api import Ingestion
from tracker.worker.folding import BatchFolder, Incoming
from tracker.worker.metrics import PipelineMetrics
from tracker.worker.notifications import Notifications
from tracker.worker.reads import Reads
from tracker.worker.routes import install_routes
from tracker.worker.state import WorkerState

__all__ = ["InMemoryLog", "InProcessWorker", "RecordingPublisher"]


class RecordingPublisher:
    """Acknowledge every event at the next offset of partition 0 and keep it, or fail them all."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.published: list[Event] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def publish(self, events: Sequence[Event]) -> list[Receipt | PublishError]:
        if self.fail:
            return [PublishError("broker unreachable") for _ in events]
        receipts: list[Receipt | PublishError] = []
        for event in events:
            receipts.append(Receipt(event.event_id, ((0, len(self.published)),)))
            self.published.append(event)
        return receipts


@dataclass
class InMemoryLog:
    """The events topic as ``Reads`` reads it back: record values by (partition, offset)."""

    records: dict[tuple[int, int], bytes] = field(default_factory=dict)

    async def read(self, positions: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return {position: self.records[position] for position in positions if position in self.records}


async def _nowhere(*args: Any) -> None:
    return None  # notifications' dead letters: no topic to write them to


@dataclass
class InProcessWorker:
    """One worker's state, folded in memory, and the aiohttp application of its routes."""

    settings: Settings
    state: WorkerState
    folder: BatchFolder
    log: InMemoryLog
    publisher: RecordingPublisher
    appended: int = 0

    @classmethod
    def create(cls, settings: Settings) -> InProcessWorker:
        """Build an empty worker that owns every partition."""
        rules = load_rules(settings.rules_path)
        router = build_router(settings, rules)
        memory = MemoryFold.create(settings, router, rules)
        every = set(range(settings.partitions))
        state = WorkerState(settings, router, rules, memory.table, memory.groups, memory.index, lambda: every)
        return cls(settings, state, memory.folder, InMemoryLog(), RecordingPublisher())

    async def fold(self, lines: Iterable[bytes]) -> None:
        """Append records to the log as the publisher would route them, then fold them in one batch."""
        values = [line for line in lines if line.strip()]
        records = route(self.state.router, Workload(records=values), self.settings.partitions)
        # route() numbers records from 0: offsets continue after what the log holds already.
        placed = [Incoming(r.topic, r.partition, r.offset + self.appended, *r[3:]) for r in records]
        self.appended += len(values)
        self.log.records.update({(record.partition, record.offset): record.value or b"" for record in placed})
        await self.folder.fold(placed)

    async def fold_published(self) -> None:
        """Fold what ``POST /v1/events`` published since the last call, as the fold agent would."""
        published, self.publisher.published = self.publisher.published, []
        await self.fold(encode_event(event) for event in published)

    def application(self) -> web.Application:
        """Return a plain aiohttp application with the worker's routes installed, as the wiring installs them."""
        metrics = PipelineMetrics.create(CollectorRegistry())
        notifications = Notifications(self.settings, metrics.notifications, _nowhere)
        ingestion = Ingestion(self.settings, self.publisher)
        web_app = web.Application()
        install_routes(web_app, self.state, ingestion, notifications, Reads(self.state, self.log))
        return web_app
