"""The workarounds of tracker/worker/faust_fixes.py, each against the Faust code it corrects."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import faust
import pytest

from tracker.kafka.partitioning import partition_for
from tracker.worker.faust_fixes import PartitionedWrites, flush_whole_producer_buffer, widen_producer_buffer

pytestmark = pytest.mark.unit

PARTITIONS = 4


@dataclass
class Message:
    partition: int


@dataclass
class Event:
    message: Message


class RecordingTable(dict[str, Any]):
    """A table that records the partition of the current event at each write, as the RocksDB store reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.data = self
        self.stored_on: dict[str, int | None] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        event = faust.current_event()
        self.stored_on[key] = None if event is None else event.message.partition
        super().__setitem__(key, value)


def keys_on_every_partition() -> dict[int, str]:
    """Return one table key per partition."""
    found: dict[int, str] = {}
    number = 0
    while len(found) < PARTITIONS:
        key = f"entity{number}/usage:entity{number}|mau"
        found.setdefault(partition_for(key, PARTITIONS), key)
        number += 1
    return found


def test_each_write_is_stored_under_its_own_keys_partition_whatever_event_came_last() -> None:
    # Arrange: a batch with one event per partition; Faust would leave the last one current.
    table = RecordingTable()
    writes = PartitionedWrites(table, PARTITIONS)
    events = [Event(Message(partition)) for partition in range(PARTITIONS)]
    writes.hold(events)

    # Act
    keys = keys_on_every_partition()
    for key in keys.values():
        writes[key] = {"facts": {}}

    # Assert
    assert table.stored_on == {key: partition for partition, key in keys.items()}
    assert faust.current_event() is None  # nothing is left current after the write


def test_a_write_for_a_partition_the_batch_did_not_come_from_is_refused() -> None:
    table = RecordingTable()
    writes = PartitionedWrites(table, PARTITIONS)
    keys = keys_on_every_partition()
    writes.hold([Event(Message(0))])

    with pytest.raises(RuntimeError, match="no event of partition"):
        writes[keys[1]] = {"facts": {}}

    assert table == {}


def test_the_producer_buffer_holds_two_batches_of_table_writes_before_delivery_waits() -> None:
    app = faust.App("widen-test", autodiscover=False)
    default = app.producer.buffer.max_messages

    widen_producer_buffer(app, 20_000)

    assert default == 100  # Faust's bound: a fold batch writes more keys than this
    assert app.producer.buffer.max_messages == 40_000


@dataclass
class SlowChannel:
    """A topic whose records each take ``seconds`` to reach the Kafka client (its buffer full, or the loop busy)."""

    seconds: float
    handed_over: int = 0

    async def publish_message(self, future: Any, wait: bool = False) -> None:
        await asyncio.sleep(self.seconds)
        self.handed_over += 1


@dataclass
class QueuedRecord:
    """What the producer buffer queues: a future whose message names its channel."""

    message: Any


async def flush_slow_records(fix: bool) -> tuple[int, int]:
    """Queue 3 records that take 0.15 s each to hand over, flush; return (still queued, handed over)."""
    app = faust.App("flush-test", autodiscover=False)
    if fix:
        flush_whole_producer_buffer(app)
    buffer = app.producer.buffer
    channel = SlowChannel(seconds=0.15)
    await buffer.start()
    try:
        for _ in range(3):
            buffer.put(QueuedRecord(message=type("Message", (), {"channel": channel})()))
        await buffer.flush()
        return buffer.size, channel.handed_over
    finally:
        await asyncio.sleep(0.5)  # the rest leaves before the buffer stops (its stop flushes too)
        await buffer.stop()


async def test_fausts_flush_gives_up_on_records_slower_than_a_tenth_of_a_second() -> None:
    # What the fix is for: a commit after this flush would cover records still queued.
    queued, handed_over = await flush_slow_records(fix=False)

    assert queued > 0
    assert handed_over < 3


async def test_the_fixed_flush_returns_only_once_every_queued_record_is_handed_over() -> None:
    queued, handed_over = await flush_slow_records(fix=True)

    assert (queued, handed_over) == (0, 3)
