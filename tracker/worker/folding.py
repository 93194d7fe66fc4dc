"""Fold a batch of Kafka records into the series table: decode, route, apply, write once per key.

A record is folded only on its home partition (the partition its fold key
maps to). A record that arrived elsewhere, written by some other producer, is
re-sent with the right key and skipped here; a retraction that was not
broadcast by our publisher is broadcast now, and so is an exchange rate (every
partition converts money with it). Invalid records go to the
dead-letter topic with the reason. None of this trusts delivery: folding the
same record twice changes nothing.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any, NamedTuple, Protocol

from tracker.core.decode import decode_event
from tracker.core.fold import FoldBatch, Outcome, SeriesValue, tombstones_key
from tracker.core.fx import is_rates_key, rates_key
from tracker.core.routing import Router, series_of
from tracker.core.transitions import Provenance
from tracker.errors import EventValidationError, FieldError
from tracker.kafka.partitioning import broadcast_key, partition_for
from tracker.kafka.publisher import BROADCAST_HEADER, encode_event
from tracker.worker.alerting import Alerting
from tracker.worker.index import TableIndex
from tracker.worker.metrics import PipelineMetrics

__all__ = ["BatchFolder", "Incoming", "SendRecord"]

#: Records folded (or table keys written) between two chances for the web server to answer:
#: a batch of 20,000 records takes seconds, and ingestion and reads share the event loop.
RECORDS_PER_YIELD = 100


class Incoming(NamedTuple):
    """One record as the folder needs it, independent of the Kafka client's record type."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: float | None


class SendRecord(Protocol):
    """Send a record to a topic (the events topic or the dead-letter topic)."""

    def __call__(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        partition: int | None,
        headers: list[tuple[str, bytes]],
    ) -> Awaitable[Any]: ...


class BatchFolder:
    """Apply batches of records to a table through the pure fold."""

    def __init__(
        self,
        router: Router,
        table: MutableMapping[str, SeriesValue],
        send: SendRecord,
        events_topic: str,
        dead_letter_topic: str,
        partitions: int,
        metrics: PipelineMetrics,
        index: TableIndex,
        alerting: Alerting | None = None,
        clock: Callable[[], float] = time.time,
        reads: Mapping[str, SeriesValue] | None = None,
    ) -> None:
        self.router = router
        self.table = table
        # Reads may come from another view of the same state than the one written (tests).
        self.reads: Mapping[str, SeriesValue] = reads if reads is not None else table
        self.send = send
        self.events_topic = events_topic
        self.dead_letter_topic = dead_letter_topic
        self.partitions = partitions
        self.metrics = metrics
        self.alerting = alerting
        self.clock = clock
        self.folded = 0
        self.records = 0
        self._applied = 0
        self._touched: dict[str, list[Provenance]] = {}
        self._rates_trail: list[Provenance] = []
        self._types: Counter[str] = Counter()
        self.index = index

    async def fold(self, records: Sequence[Incoming]) -> None:
        """Fold one batch; every changed table key is written exactly once.

        The batch is folded one partition at a time: a partition's keys, fold groups
        and alert entries are its own, so the result is the batch's, but only one
        partition's decoded values are held at once (at a million events, in-process
        peak RSS 486 -> 329 MB with 8 partitions). The alert transitions of the whole
        batch are then published together.
        """
        parts: dict[int, list[Incoming]] = {}
        for record in records:
            parts.setdefault(record.partition, []).append(record)
        self._applied = 0
        self._types = Counter()
        for partition, part in parts.items():
            await self._fold_partition(partition, part)
        if self.alerting is not None:
            await self.alerting.flush()
        # Counted once the batch is in the tables, so a reader who sees the count sees the state.
        self.records += len(records)
        self.metrics.batch_size.observe(len(records))
        self.folded += self._applied
        for kind, count in self._types.items():  # one labelled increment per type per batch
            self.metrics.events.labels(type=kind).inc(count)
        now = self.clock()
        for count, record in enumerate(records, 1):
            if record.timestamp is not None:
                self.metrics.latency.observe(max(0.0, now - record.timestamp))
            if count % (10 * RECORDS_PER_YIELD) == 0:
                await asyncio.sleep(0)

    async def _fold_partition(self, partition: int, records: Sequence[Incoming]) -> None:
        batch = FoldBatch(
            self.router,
            self.reads.get,
            functools.partial(self.index.locate, partition),
            functools.partial(tombstones_key, partition),
            functools.partial(rates_key, partition),
        )
        self._touched = {}
        self._rates_trail = []
        for count, record in enumerate(records, 1):
            if count % RECORDS_PER_YIELD == 0:
                await asyncio.sleep(0)  # let the web server answer during a long batch
            await self._fold_one(record, batch)
        new_keys: dict[str, set[str]] = {}
        fresh: dict[str, SeriesValue] = {}
        for key in batch.revisited:
            new_keys.setdefault(key.partition("/")[0], set()).add(key)
        for count, (key, value) in enumerate(batch.changed.items(), 1):
            if count % RECORDS_PER_YIELD == 0:
                await asyncio.sleep(0)
            if not key.startswith("#"):
                new_keys.setdefault(key.partition("/")[0], set()).add(key)
                self.index.add_series(key, ())
                fresh[key] = value
            elif is_rates_key(key):
                self.index.add_rates(key)
            self.table[key] = value
        for event_id, keys in batch.applied.items():
            for key in keys:
                self.index.add_series(key, (event_id,))
        if self._rates_trail:
            # A rate converts money in any group of the partition: evaluate each whole (rates are rare).
            for fold_key in self.index.fold_keys(partition):
                trail = self._touched.setdefault(fold_key, [])
                trail.extend(item for item in self._rates_trail if item not in trail)
                new_keys.setdefault(fold_key, set()).update(
                    key for key in self.index.group(fold_key) if not key.startswith("#")
                )
        if self.alerting is not None and self._touched:
            await self.alerting.evaluate(self._touched, new_keys, fresh)

    async def _fold_one(self, record: Incoming, batch: FoldBatch) -> None:
        if record.value is None:
            await self._dead_letter(record, EventValidationError([FieldError("", "record has no value")]))
            return
        try:
            event = decode_event(record.value)
        except EventValidationError as exc:
            await self._dead_letter(record, exc)
            return
        event_id = event.event_id
        series = series_of(event)
        if series is None:  # a retraction
            if BROADCAST_HEADER not in record.headers:
                await self._broadcast(event_id, record)
                self.metrics.rerouted.inc()
                return
        else:
            key = self.router.fold_key(series.subject)  # the record key our publisher gives it
            if partition_for(key, self.partitions) != record.partition:
                await self.send(self.events_topic, key.encode(), encode_event(event), None, [])
                self.metrics.rerouted.inc()
                return
        outcome = batch.apply(event, event_id, series, (record.partition, record.offset))
        self._applied += 1
        provenance = Provenance(event_id, record.topic, record.partition, record.offset)
        for key in batch.touched:
            if not key.startswith("#"):
                trail = self._touched.setdefault(key.partition("/")[0], [])
                if not trail or trail[-1] is not provenance:  # one record may touch several keys
                    trail.append(provenance)
            elif is_rates_key(key) and provenance not in self._rates_trail:
                self._rates_trail.append(provenance)
        self._types[event.type] += 1
        if outcome is Outcome.DUPLICATE:
            self.metrics.duplicates.inc()
        elif outcome is Outcome.ID_CONFLICT:
            self.metrics.rejected.labels(reason="id_conflict").inc()

    async def _broadcast(self, event_id: str, record: Incoming) -> None:
        assert record.value is not None
        for partition in range(self.partitions):
            key = broadcast_key(partition, event_id).encode()
            await self.send(self.events_topic, key, record.value, partition, [BROADCAST_HEADER])

    async def _dead_letter(self, record: Incoming, exc: EventValidationError) -> None:
        reason = "invalid_json" if any(not error.path for error in exc.errors) else "invalid_event"
        self.metrics.rejected.labels(reason=reason).inc()
        letter = {
            "reason": reason,
            "errors": [{"path": error.path, "reason": error.reason} for error in exc.errors],
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "value": None if record.value is None else record.value.decode("utf-8", errors="replace"),
        }
        key = record.key or f"{record.topic}:{record.partition}:{record.offset}".encode()
        await self.send(self.dead_letter_topic, key, json.dumps(letter).encode(), None, [])
