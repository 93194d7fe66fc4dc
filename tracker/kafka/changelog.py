"""Read a table's state back from its compacted changelog, and write a batch of table values to it.

A changelog record is (key, latest value) on the partition of its key; the
log cleaner keeps about one record per key. Reading a partition from its
start to its end offset, the last value of each key wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)

__all__ = ["REFUSED_FOR_GOOD", "end_offsets", "read_changelogs", "send_records", "send_values"]

#: Errors with which a record is refused whatever the number of attempts: too large for the
#: topic or the client, or against the topic's rules. Sending it again would stall the fold.
REFUSED_FOR_GOOD = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
    PolicyViolationError,
    UnsupportedForMessageFormatError,
)

#: Records asked for per fetch while recovering.
RECOVERY_FETCH_RECORDS = 20_000


async def end_offsets(reader: AIOKafkaConsumer, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Return the end offset of each changelog partition."""
    if not partitions:
        return {}
    answer: dict[TopicPartition, int] = await reader.end_offsets(partitions)
    return answer


async def read_changelogs(
    reader: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]
) -> tuple[dict[TopicPartition, dict[str, bytes]], dict[TopicPartition, int]]:
    """Read each partition from its start up to ``ends``.

    Returns the last value of each key per partition, and how many records each partition had.
    """
    values: dict[TopicPartition, dict[str, bytes]] = {tp: {} for tp in ends}
    read = dict.fromkeys(ends, 0)
    todo = {tp: end for tp, end in ends.items() if end > 0}
    if not todo:
        return values, read
    reader.assign(list(todo))
    await reader.seek_to_beginning(*todo)
    while todo:
        fetched = await reader.getmany(*todo, timeout_ms=1000, max_records=RECOVERY_FETCH_RECORDS)
        for tp, records in fetched.items():
            state = values[tp]
            read[tp] += len(records)
            for record in records:
                if record.key is None:
                    continue
                if record.value is None:
                    state.pop(record.key.decode(), None)
                else:
                    state[record.key.decode()] = record.value
        for tp, end in list(todo.items()):
            # Compaction leaves gaps in the offsets: ask the position, not the last offset seen.
            if await reader.position(tp) >= end:
                del todo[tp]
    reader.unsubscribe()
    return values, read


async def send_values(
    producer: AIOKafkaProducer, topic: str, partition: int, values: Mapping[str, bytes | None]
) -> list[tuple[asyncio.Future[Any], int]]:
    """Queue ``values`` for one changelog partition in as few batches as fit.

    Returns each batch's future with its record count: once a future is done,
    the partition's end offset is at least its offset plus the count.
    """
    return await send_records(producer, topic, partition, [(key.encode(), value) for key, value in values.items()])


async def send_records(
    producer: AIOKafkaProducer, topic: str, partition: int, records: Sequence[tuple[bytes, bytes | None]]
) -> list[tuple[asyncio.Future[Any], int]]:
    """Queue keyed records for one partition in as few batches as fit (see ``send_values``)."""
    sent: list[tuple[asyncio.Future[Any], int]] = []
    batch = producer.create_batch()
    for encoded, value in records:
        if batch.append(key=encoded, value=value, timestamp=None) is None:
            sent.append((await producer.send_batch(batch, topic, partition=partition), batch.record_count()))
            # Filling a batch takes milliseconds and queueing it rarely waits: let other tasks run.
            await asyncio.sleep(0)
            batch = producer.create_batch()
            # The first record of a batch always fits, however big.
            batch.append(key=encoded, value=value, timestamp=None)
    if batch.record_count():
        sent.append((await producer.send_batch(batch, topic, partition=partition), batch.record_count()))
    return sent
