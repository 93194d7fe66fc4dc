"""``tracker bench --in-process``: the worker's fold with no Kafka, timed in CPU seconds.

The records the publisher would send are routed as it routes them (fact
records keyed by their fold key, retractions broadcast to every partition,
invalid records on partition 0), then folded in batches through the worker's
own ``BatchFolder``, ``Alerting``, tables and index; what would go to Kafka
goes nowhere. No broker, no network: what is left is our code. The rate is
records per CPU second of the fold alone (``time.process_time``), which varies
far less than wall-clock time on a shared machine, so two versions of the
fold can be compared run against run. As in the full benchmark, the folded
signals must equal the pure fold of the events or no rate is given.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from tracker.bench.correctness import expected_signals
from tracker.bench.workload import Workload, generate
from tracker.core.decode import decode_event
from tracker.core.events import EventRetracted
from tracker.core.routing import Router, series_of
from tracker.core.rules import RuleSet
from tracker.core.signals import derive_signals
from tracker.errors import EventValidationError, TrackerError
from tracker.kafka.partitioning import partition_for
from tracker.kafka.publisher import BROADCAST_HEADER
from tracker.rules_file import build_router, load_rules
from tracker.settings import Settings
from tracker.worker.alerting import Alerting
from tracker.worker.folding import BatchFolder, Incoming
from tracker.worker.index import TableIndex
from tracker.worker.metrics import PipelineMetrics
from tracker.worker.process import tune_garbage_collector

__all__ = ["InProcessFigures", "MemoryFold", "check_against_pure_fold", "fold_in_process", "route"]


@dataclass(frozen=True)
class InProcessFigures:
    """What an in-process fold measured."""

    events: int
    records: int
    cpu_seconds: float
    wall_seconds: float

    @property
    def records_per_cpu_second(self) -> float:
        """Return the fold's rate in records per CPU second."""
        return self.records / self.cpu_seconds

    def table(self) -> str:
        """Return the figures as aligned text."""
        rows = [
            ("events generated", f"{self.events:,}"),
            ("records folded (retractions once per partition)", f"{self.records:,}"),
            ("correctness: signals equal the pure fold", "True"),
            ("fold in-process (records per CPU second)", f"{self.records_per_cpu_second:,.1f}"),
            ("fold in-process (records per wall-clock second)", f"{self.records / self.wall_seconds:,.1f}"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def route(router: Router, workload: Workload, partitions: int) -> list[Incoming]:
    """Return the records as the events topic would hold them after our publisher."""
    records: list[Incoming] = []
    for offset, raw in enumerate(workload.records):
        try:
            event = decode_event(raw)
        except EventValidationError:
            records.append(Incoming("events", 0, offset, None, raw, (), None))
            continue
        series = series_of(event)
        if isinstance(event, EventRetracted) or series is None:
            records.extend(
                Incoming("events", partition, offset, None, raw, (BROADCAST_HEADER,), None)
                for partition in range(partitions)
            )
            continue
        key = router.fold_key(series.subject)
        records.append(Incoming("events", partition_for(key, partitions), offset, key.encode(), raw, (), None))
    return records


async def _send_nowhere(
    topic: str, key: bytes, value: bytes, partition: int | None, headers: list[tuple[str, bytes]]
) -> None:
    return None  # re-routed records and dead letters: the fold's answer does not depend on them


async def _publish_nowhere(records: list[tuple[bytes, bytes]]) -> None:
    return None  # alert transitions


@dataclass(frozen=True)
class MemoryFold:
    """The worker's fold over plain dicts standing for its Faust tables: what it computes, without Kafka or RocksDB."""

    table: dict[str, Any]
    groups: dict[str, Any]
    index: TableIndex
    folder: BatchFolder

    @classmethod
    def create(cls, settings: Settings, router: Router, rules: RuleSet) -> MemoryFold:
        """Wire the worker's own BatchFolder, Alerting and index; what they would send to Kafka goes nowhere."""
        table: dict[str, Any] = {}
        groups: dict[str, Any] = {}
        metrics = PipelineMetrics.create(CollectorRegistry(), tuple(rule.name for rule in rules.rules))
        index = TableIndex(table, settings.partitions)
        alerting = Alerting(rules, router, table, groups, index.group, _publish_nowhere, metrics)
        folder = BatchFolder(
            router,
            table,
            _send_nowhere,
            settings.events_topic,
            settings.dead_letter_topic,
            settings.partitions,
            metrics,
            index,
            alerting,
        )
        return cls(table, groups, index, folder)


def fold_in_process(settings: Settings, events: int, entities: int, seed: int) -> InProcessFigures:
    """Generate ``events``, fold them in batches of ``settings.batch_size``; raise if the signals are wrong."""
    router = build_router(settings)
    rules = load_rules(settings.rules_path)
    workload = generate(events, entities, seed)
    records = route(router, workload, settings.partitions)
    memory = MemoryFold.create(settings, router, rules)
    folder, table = memory.folder, memory.table
    tune_garbage_collector()

    async def fold_all() -> tuple[float, float]:
        cpu = wall = 0.0
        for start in range(0, len(records), settings.batch_size):
            began, began_cpu = time.perf_counter(), time.process_time()
            await folder.fold(records[start : start + settings.batch_size])
            cpu += time.process_time() - began_cpu
            wall += time.perf_counter() - began
        return cpu, wall

    cpu, wall = asyncio.run(fold_all())
    check_against_pure_fold(router, workload, table)
    return InProcessFigures(events, len(records), cpu, wall)


def check_against_pure_fold(router: Router, workload: Workload, table: Mapping[str, Any]) -> None:
    """Raise TrackerError unless the table's signals are those of the pure fold of the workload."""
    expected = expected_signals(router, workload)
    actual = sorted((s.name, s.labels, s.value) for s in derive_signals(router, dict(table.items())))
    if actual != expected:
        raise TrackerError(
            f"the in-process fold disagrees with the pure fold: {len(actual)} signals, {len(expected)} expected"
        )
