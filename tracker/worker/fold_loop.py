"""Read the events topic in batches, fold each batch, write the changed table values, then commit.

This is the worker's consumer of record, written on aiokafka rather than as a
Faust agent and Faust tables: Faust hands records to a stream one at a time
(about 12,500 records/s doing nothing on our machines, docs/performance.md),
while a batch here costs one fetch, one changelog write per changed key and
one commit. The guarantees are the same as before:

- at least once: a batch's changelog records, re-routed records and
  dead letters are acknowledged by the broker (acks=all) before its offsets
  are committed, so a crash re-reads the batch, and folding it again changes
  nothing (while one batch is being written and committed, the next one folds;
  its writes go out only after);
- a partition is folded only once its tables are rebuilt from the changelog
  (at assignment, outside the rebalance callback so heartbeats go on), and
  its state is dropped when it moves to another worker; state kept across a
  rebalance is re-read unless its changelog ends where this worker left it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from tracker.kafka.changelog import REFUSED_FOR_GOOD, end_offsets, read_changelogs, send_records, send_values
from tracker.kafka.client_config import client_options
from tracker.kafka.partitioning import partition_for, partitioner
from tracker.kafka.topics import MAX_TABLE_VALUE_BYTES
from tracker.settings import Settings
from tracker.worker.folding import RECORDS_PER_YIELD, BatchFolder, Incoming
from tracker.worker.metrics import PipelineMetrics
from tracker.worker.state import StateTable

__all__ = ["Changelog", "FoldLoop"]

logger = logging.getLogger(__name__)

#: How long the producer waits to fill a batch of records, and how big a batch may be.
PRODUCER_LINGER_MS = 10
PRODUCER_MAX_BATCH_BYTES = 512 * 1024

#: Records taken from the consumer at once: converting a fetch is done in slices this size,
#: so that the web server answers in between.
RECORDS_PER_FETCH = 2000

#: Pause between two attempts to write a batch's records while the broker does not answer.
RETRY_SECONDS = 1.0

#: Table values queued in the producer before the batch's writes wait for the broker's
#: acknowledgements. A batch rewrites tens of MB of values at a million events (27 MB per
#: 20,000 records); queued at once, the producer held a second copy of them all.
UNACKNOWLEDGED_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Changelog:
    """A table and the compacted topic that keeps it."""

    table: StateTable
    topic: str


class FoldLoop(ConsumerRebalanceListener):  # type: ignore[misc]
    """The fold's consumer group member: assignment, recovery, batches, commits."""

    def __init__(
        self,
        settings: Settings,
        changelogs: Sequence[Changelog],
        metrics: PipelineMetrics,
        on_assigned: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.changelogs = tuple(changelogs)
        self.on_assigned = on_assigned
        self.folder: BatchFolder | None = None
        #: Partitions recovered and being folded; those assigned but not recovered yet.
        self.ready: set[int] = set()
        self.pending: set[int] = set()
        self._generation = 0
        self._lock = asyncio.Lock()
        self._outbox: list[tuple[str, bytes, bytes, int | None, list[tuple[str, bytes]]]] = []
        # Where each changelog partition ended after this worker's last read or write of it.
        self._known_ends: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._flushing: asyncio.Task[None] | None = None

    @property
    def recovering(self) -> bool:
        """Whether some assigned partition is still being rebuilt."""
        return bool(self.pending)

    async def start(self) -> None:
        """Connect, join the group and start folding."""
        settings = self.settings
        options = client_options(settings)
        self.producer = AIOKafkaProducer(
            **options,
            acks="all",
            partitioner=partitioner,
            linger_ms=PRODUCER_LINGER_MS,
            max_batch_size=PRODUCER_MAX_BATCH_BYTES,
            # A table value is one record: a busy series or fold group can pass Kafka's 1 MB default.
            max_request_size=MAX_TABLE_VALUE_BYTES,
        )
        self._consumer = AIOKafkaConsumer(
            **options,
            group_id=settings.faust_app_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A worker that dies silently keeps its partitions this long; heartbeats go out
            # at least three times within it.
            session_timeout_ms=int(settings.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(min(3.0, settings.session_timeout_seconds / 3) * 1000),
        )
        self._reader = AIOKafkaConsumer(**options, enable_auto_commit=False, auto_offset_reset="earliest")
        await self.producer.start()
        await self._reader.start()
        await self._consumer.start()
        self._consumer.subscribe([settings.events_topic], listener=self)
        self._task = asyncio.create_task(self._run(), name="fold")
        self._task.add_done_callback(_stop_process_if_failed)

    async def stop(self) -> None:
        """Stop folding and leave the group (others take the partitions at once)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._flushing is not None:
            # A clean stop commits the last batch folded; a crash would fold it again.
            await asyncio.gather(self._flushing, return_exceptions=True)
        for client in (self._consumer, self._reader, self.producer):
            if client is not None:
                await client.stop()

    async def send(
        self, topic: str, key: bytes, value: bytes, partition: int | None, headers: list[tuple[str, bytes]]
    ) -> None:
        """Queue a record (re-routed event, broadcast, dead letter) to go out with the batch's writes."""
        self._outbox.append((topic, key, value, partition, headers))

    async def send_now(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Send keyed records and wait for the broker's acknowledgements, retrying while it does not answer."""
        assert self.producer is not None
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for key, value in records:
            by_partition.setdefault(partition_for(key, self.settings.partitions), []).append((key, value))
        while True:
            try:
                sent = [
                    future
                    for partition, batch in by_partition.items()
                    for future, _ in await send_records(self.producer, topic, partition, batch)
                ]
                await asyncio.gather(*sent)
                return
            except REFUSED_FOR_GOOD:
                for partition, batch in by_partition.items():
                    for record_key, record_value in batch:
                        await self._send_alone(topic, record_key, record_value, partition, [])
                return
            except KafkaError as exc:
                # Sending again is harmless: a transition carries its idempotency key.
                logger.warning("cannot send to %s, retrying: %r", topic, exc)
                await asyncio.sleep(RETRY_SECONDS)

    async def _send_alone(
        self, topic: str, key: bytes, value: bytes | None, partition: int | None, headers: list[tuple[str, bytes]]
    ) -> None:
        """Send one record and wait; one the broker refuses for good goes to the dead-letter topic instead.

        The slow path after a batch was refused: the batch's other records still go
        out, and the fold goes on (a refused record was retried forever before, and
        the fold with it).
        """
        assert self.producer is not None
        while True:
            try:
                await (await self.producer.send(topic, value=value, key=key, partition=partition, headers=headers))
                return
            except REFUSED_FOR_GOOD as exc:
                await self._dead_letter_refused(topic, key, value, partition, exc)
                return
            except KafkaError as exc:
                logger.warning("cannot send to %s, retrying: %r", topic, exc)
                await asyncio.sleep(RETRY_SECONDS)

    async def _dead_letter_refused(
        self, topic: str, key: bytes, value: bytes | None, partition: int | None, exc: Exception
    ) -> None:
        assert self.producer is not None
        # The record itself cannot be written anywhere: the letter says what it was and why.
        letter = {
            "reason": "refused_by_broker",
            "error": type(exc).__name__,
            "topic": topic,
            "partition": partition,
            "key": key.decode("utf-8", errors="replace")[:1000],
            "bytes": len(value or b""),
        }
        logger.error("%s refused a record of %d bytes (key %.200r): %s", topic, letter["bytes"], key, letter["error"])
        self.metrics.rejected.labels(reason="refused_by_broker").inc()
        letter_key = f"refused:{topic}".encode()
        await self._send_alone(self.settings.dead_letter_topic, letter_key, json.dumps(letter).encode(), None, [])

    # Rebalance callbacks: called by aiokafka's coordinator, between batches (the lock).

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """Stop folding: wait for the batch in hand to be written and committed."""
        self._generation += 1
        async with self._lock:
            await self._settle()
            self.ready = set()
            self.pending = set()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        """Hold the new partitions until the fold loop has rebuilt their state."""
        assert self._consumer is not None
        ours = {tp.partition for tp in assigned if tp.topic == self.settings.events_topic}
        self.metrics.rebalances.inc()
        self._generation += 1
        for changelog in self.changelogs:
            for partition in changelog.table.held() - ours:
                changelog.table.drop(partition)
        if assigned:
            self._consumer.pause(*assigned)
        self.pending = ours

    async def _run(self) -> None:
        while True:
            if self.pending:
                try:
                    await self._recover()
                except KafkaError as exc:
                    logger.warning("cannot rebuild the tables yet, retrying: %r", exc)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
            fetched = await self._take()
            async with self._lock:
                await self._fold(fetched)

    async def _take(self) -> dict[TopicPartition, list[Incoming]]:
        """Wait for records, then gather more for up to ``batch_within_seconds``, at most ``batch_size``.

        Behind a backlog a batch is full at once; one series touched several times in a
        batch is written, and its alerts evaluated, once. At a trickle, a record waits
        at most the window. Each fetch is converted as it comes, so that the client's
        record objects (about 500 bytes each) are not all kept while the batch folds.
        """
        assert self._consumer is not None
        within, wanted = self.settings.batch_within_seconds, self.settings.batch_size
        taken: dict[TopicPartition, list[Incoming]] = {}
        count = await _convert(
            await self._consumer.getmany(timeout_ms=int(within * 1000), max_records=min(wanted, RECORDS_PER_FETCH)),
            taken,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while taken and count < wanted and not self.pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            # Records already fetched come back without a pause: let the web server answer.
            await asyncio.sleep(0)
            more = await self._consumer.getmany(
                timeout_ms=max(1, int(remaining * 1000)), max_records=min(wanted - count, RECORDS_PER_FETCH)
            )
            count += await _convert(more, taken)
        return taken

    async def _recover(self) -> None:
        assert self._consumer is not None and self._reader is not None
        generation, wanted = self._generation, set(self.pending)
        partitions = [TopicPartition(c.topic, p) for c in self.changelogs for p in sorted(wanted)]
        ends = await end_offsets(self._reader, partitions)
        held = {c.topic: c.table.held() for c in self.changelogs}
        stale = {
            tp: end for tp, end in ends.items() if tp.partition not in held[tp.topic] or self._known_ends.get(tp) != end
        }
        values, read = await read_changelogs(self._reader, stale)
        for tp, count in read.items():
            self.metrics.records_read.labels(topic=tp.topic).inc(count)
        if generation != self._generation:
            return  # assigned again meanwhile: start over with the new assignment
        tables = {c.topic: c.table for c in self.changelogs}
        for tp, state in values.items():
            tables[tp.topic].load(tp.partition, state)
        self._known_ends.update(ends)
        self.on_assigned()
        self.ready, self.pending = wanted, set()
        resumed = [TopicPartition(self.settings.events_topic, p) for p in sorted(wanted)]
        self._consumer.resume(*resumed)
        logger.info("folding partitions %s (rebuilt %d from changelogs)", sorted(wanted), len(stale))

    async def _fold(self, fetched: dict[TopicPartition, list[Incoming]]) -> None:
        assert self._consumer is not None and self.folder is not None
        mine = {tp: records for tp, records in fetched.items() if tp.partition in self.ready and records}
        if not mine:
            return
        records = [record for part in mine.values() for record in part]
        await self.folder.fold(records)  # one partition at a time, see BatchFolder.fold
        self.metrics.records_read.labels(topic=self.settings.events_topic).inc(len(records))
        outbox, self._outbox = self._outbox, []
        writes = [
            (changelog.topic, partition, values)
            for changelog in self.changelogs
            for partition, values in changelog.table.take_writes().items()
        ]
        offsets = {tp: records[-1].offset + 1 for tp, records in mine.items()}
        # One batch in flight at most: the previous batch is written and committed before this
        # one is sent, so commits follow the writes in order; meanwhile the next batch folds.
        await self._settle()
        self._flushing = asyncio.create_task(self._flush(outbox, writes, offsets))

    async def _settle(self) -> None:
        """Wait until the batch in flight is written and committed (raise what it raised)."""
        if self._flushing is not None:
            flushing, self._flushing = self._flushing, None
            await flushing

    async def _flush(
        self,
        outbox: list[tuple[str, bytes, bytes, int | None, list[tuple[str, bytes]]]],
        writes: list[tuple[str, int, dict[str, bytes | None]]],
        offsets: dict[TopicPartition, int],
    ) -> None:
        assert self._consumer is not None
        await self._write(outbox, writes)
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # The group moved on (a rebalance): the next owner re-reads from the last commit.
            logger.warning("commit refused, the batch will be folded again: %r", exc)

    async def _write(
        self,
        outbox: list[tuple[str, bytes, bytes, int | None, list[tuple[str, bytes]]]],
        writes: list[tuple[str, int, dict[str, bytes | None]]],
    ) -> None:
        """Send a batch's records and table values; return once the broker has them all."""
        while True:
            try:
                await self._send_all(outbox, writes)
                return
            except REFUSED_FOR_GOOD:
                # Some record is refused for good: send each alone, and dead-letter those refused.
                # The tables keep the value a changelog refused until the worker restarts (the
                # fact stays in the events topic; the letter names the key).
                for topic, key, value, partition, headers in outbox:
                    await self._send_alone(topic, key, value, partition, headers)
                for topic, partition, values in writes:
                    self._known_ends.pop(TopicPartition(topic, partition), None)  # read it again on assignment
                    for name, table_value in values.items():
                        await self._send_alone(topic, name.encode(), table_value, partition, [])
                return
            except KafkaError as exc:
                # Sending again is harmless: a table record carries the whole value of its key.
                logger.warning("cannot write the batch's records, retrying: %r", exc)
                await asyncio.sleep(RETRY_SECONDS)

    async def _send_all(
        self,
        outbox: list[tuple[str, bytes, bytes, int | None, list[tuple[str, bytes]]]],
        writes: list[tuple[str, int, dict[str, bytes | None]]],
    ) -> None:
        assert self.producer is not None
        futures = [
            await self.producer.send(topic, value=value, key=key, partition=partition, headers=headers)
            for topic, key, value, partition, headers in outbox
        ]
        batches: list[tuple[TopicPartition, tuple[asyncio.Future[Any], int]]] = []
        unacknowledged = 0
        for topic, partition, values in writes:
            if unacknowledged >= UNACKNOWLEDGED_BYTES:
                # Waiting changes nothing but when: every write is acknowledged before the commit.
                await asyncio.gather(*(future for _, (future, _) in batches))
                unacknowledged = 0
            sent = await send_values(self.producer, topic, partition, values)
            batches.extend((TopicPartition(topic, partition), item) for item in sent)
            unacknowledged += sum(len(key) + len(value or b"") for key, value in values.items())
        await asyncio.gather(*futures)
        for tp, (future, count) in batches:
            metadata = await future
            self._known_ends[tp] = max(self._known_ends.get(tp, 0), metadata.offset + count)


def _stop_process_if_failed(task: asyncio.Task[None]) -> None:
    # A worker whose fold died must not go on answering with a state that no longer moves:
    # stop it (cleanly, as on SIGTERM) so that its supervisor restarts it.
    if task.cancelled() or task.exception() is None:
        return
    logger.critical("the fold stopped on an error; stopping the worker", exc_info=task.exception())
    os.kill(os.getpid(), signal.SIGTERM)


async def _convert(fetched: dict[TopicPartition, list[Any]], into: dict[TopicPartition, list[Incoming]]) -> int:
    """Append the client's records to ``into`` as Incoming records; return how many there were."""
    count = 0
    for tp, batch in fetched.items():
        converted = into.setdefault(tp, [])
        for start in range(0, len(batch), RECORDS_PER_YIELD):
            converted.extend(_incoming(record) for record in batch[start : start + RECORDS_PER_YIELD])
            await asyncio.sleep(0)  # a full fetch takes tens of milliseconds to convert
        count += len(batch)
    return count


def _incoming(record: Any) -> Incoming:
    return Incoming(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=tuple((name, bytes(value)) for name, value in record.headers or ()),
        timestamp=record.timestamp / 1000 if record.timestamp is not None else None,
    )
