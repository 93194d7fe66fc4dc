"""The four faust-streaming behaviours the fold works around, each in one place, with its upstream reference.

1. **A RocksDB table stores a write under the current event's partition**, even when
   the table's changelog is partitioned by key (``use_partitioner=True``):
   ``faust/stores/rocksdb.py`` ``_set`` opens the database of
   ``current_event().message.partition``. The fold writes a batch's keys after
   ``take_events`` handed the batch over, when the current event is whichever
   came last, so a key would land in another partition's database: dropped with
   that partition at the next rebalance, and read back under the wrong persisted
   offset. ``PartitionedWrites`` makes an event of the key's own partition
   current for each write. Upstream: robinhood/faust#478 (the unmerged fix),
   faust-streaming/faust#130 and #144 (reads fixed, writes not).

2. **Recovery resumes the stream partitions before it seeks them to the committed
   offsets** (faust 0.15.3 ``faust/tables/recovery.py`` resumes at line 649, seeks
   at 653-656). Records fetched in between are delivered, then the seek makes the
   consumer's drain loop take them for a gap (``faust/transport/consumer.py``
   1208-1215): they enter the acked offsets twice, each duplicate ends the
   consecutive run Faust commits, and commits crawl one offset per commit
   interval (docs/reliability.md, bug 6). ``hold_streams_until_seeked`` stops the
   flow on ``on_rebalance_complete``, which comes before the resume; Faust turns
   the flow back on after its seek. Only when every partition has a committed
   offset: aiokafka's ``seek_to_committed`` leaves a partition without one where it
   is, so what the drain loop dropped there would never be read again.
   Upstream: faust-streaming/faust#596, robinhood/faust#625.

3. **Delivery stalls while more than 100 table writes wait to be sent.** Each table
   write queues a changelog record in the producer's buffer, and before handing over
   each incoming record Faust's conductor waits until that buffer holds at most
   ``ProducerBuffer.max_messages`` (100, not a setting; ``faust/transport/producer.py``
   ``wait_until_ebb``), logging "producer buffer full". A fold batch writes a key per
   changed series, usually more than 100, so records stopped flowing after every batch:
   at 1,000 events/s, 40% of records took 1 to 2.5 s from publish to fold (0.65 s on
   average; 0.07 s with the bound raised). ``widen_producer_buffer`` bounds the buffer
   by what two batches write instead. Upstream: faust-streaming/faust#173.

4. **A commit flushes the producer buffer only while records leave it every 0.1 s.**
   Before committing offsets, Faust flushes its producer (faust-streaming/faust#273)
   so that the table writes of the acked events reach the changelog first. But the
   buffer's ``flush`` (``faust/transport/producer.py`` ``flush_atmost``) returns as
   soon as one record takes more than 0.1 s to be handed to the Kafka client, which
   happens whenever a fold batch holds the event loop longer than that. The offsets
   were then committed with changelog records still queued; a SIGKILL lost them, and
   the restarted worker, reading the table back from its changelog, missed the
   writes of events it would not fold again (thousands of signals, one CI run in
   a few). ``flush_whole_producer_buffer`` makes the flush wait until every queued
   record is handed over. Upstream: faust-streaming/faust#112 meant the flush to
   wait "until the buffer is empty"; it does not.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

import faust
from faust.streams import _current_event  # the context variable behind faust.current_event()

from tracker.errors import InfrastructureError
from tracker.kafka.lag import committed_offsets
from tracker.kafka.partitioning import partition_for
from tracker.settings import Settings

__all__ = ["PartitionedWrites", "flush_whole_producer_buffer", "hold_streams_until_seeked", "widen_producer_buffer"]

logger = logging.getLogger(__name__)

#: How long the end of a rebalance waits for the fold's committed offsets.
COMMITTED_LOOKUP_SECONDS = 10.0
#: How often a flush looks again whether the producer buffer is empty.
FLUSH_POLL_SECONDS = 0.1


class PartitionedWrites(MutableMapping[str, Any]):
    """A Faust table whose writes are stored under their key's partition (see 1. above).

    Reads go to the table's store directly, without Faust's per-access sensor hooks
    (the fold reads a key several times per record); every write goes through the
    table, so it is sent to the changelog.
    """

    def __init__(self, table: Any, partitions: int) -> None:
        self.table = table
        self.store: MutableMapping[str, Any] = table.data
        self.partitions = partitions
        self._events: dict[int, Any] = {}

    def hold(self, events: Iterable[Any]) -> None:
        """Remember one event of each partition of the batch being folded."""
        self._events = {event.message.partition: event for event in events}

    def __getitem__(self, key: str) -> Any:
        return self.store[key]

    def __contains__(self, key: object) -> bool:
        return key in self.store

    def __iter__(self) -> Iterator[str]:
        return iter(self.store)

    def __len__(self) -> int:
        return len(self.store)

    def __setitem__(self, key: str, value: Any) -> None:
        token = _current_event.set(weakref.ref(self._event_of(key)))
        try:
            self.table[key] = value
        finally:
            _current_event.reset(token)

    def __delitem__(self, key: str) -> None:
        token = _current_event.set(weakref.ref(self._event_of(key)))
        try:
            del self.table[key]
        finally:
            _current_event.reset(token)

    def _event_of(self, key: str) -> Any:
        partition = partition_for(key, self.partitions)
        try:
            return self._events[partition]
        except KeyError:
            # The fold writes only keys of the partitions its batch came from.
            raise RuntimeError(f"no event of partition {partition} in the batch for table key {key!r}") from None


def hold_streams_until_seeked(app: faust.App, settings: Settings) -> None:
    """Stop the stream flow at the end of each rebalance until Faust has sought (see 2. above)."""

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def _hold(sender: Any, **kwargs: Any) -> None:
        try:
            committed = await asyncio.wait_for(
                committed_offsets(settings, settings.faust_app_id), COMMITTED_LOOKUP_SECONDS
            )
        except (InfrastructureError, TimeoutError) as exc:
            logger.warning("cannot read the fold's committed offsets; streams resume as Faust does: %s", exc)
            return
        if all(committed.values()):
            app.consumer.stop_flow()


def widen_producer_buffer(app: faust.App, batch_size: int) -> None:
    """Let the producer's buffer hold what two fold batches write before delivery waits (see 3. above)."""
    buffer = app.producer.buffer
    buffer.max_messages = max(buffer.max_messages, 2 * batch_size)


def flush_whole_producer_buffer(app: faust.App) -> None:
    """Make the producer buffer's flush wait until every queued record is handed to the client (see 4. above)."""
    buffer: Any = app.producer.buffer  # ProducerBufferT declares neither attribute used here
    hand_over = buffer._send_pending  # the buffer's sending task looks it up when it starts
    handing_over = 0

    async def send_pending(future: Any) -> None:
        nonlocal handing_over
        handing_over += 1
        try:
            await hand_over(future)
        finally:
            handing_over -= 1

    async def flush() -> None:
        queued, started, polls = buffer.size, time.monotonic(), 0
        while buffer.size or handing_over:
            if buffer.size and buffer.state != "running":  # as Faust's own flush
                raise RuntimeError(f"cannot flush {buffer.size} records: the producer is not running")
            buffer.message_sent.clear()
            try:
                await asyncio.wait_for(buffer.message_sent.wait(), FLUSH_POLL_SECONDS)
            except TimeoutError:
                polls += 1
        if polls:
            logger.info(
                "flushed %d queued records in %.2f s (Faust's own flush returns once %.1f s pass without a send)",
                queued,
                time.monotonic() - started,
                FLUSH_POLL_SECONDS,
            )

    buffer._send_pending = send_pending
    buffer.flush = flush
