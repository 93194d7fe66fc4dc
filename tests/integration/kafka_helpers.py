"""Reach a topic the way another client would: raw produce, read from earliest, end offsets.

Every call is synchronous (it runs its own event loop) and bounded, so sync tests
can use it between HTTP and CLI steps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from tracker.settings import Settings


@dataclass(frozen=True)
class Raw:
    """One record as a foreign producer would send it: no validation, no routing."""

    value: bytes | None
    key: bytes | None = None
    partition: int | None = None
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)


def produce_raw(settings: Settings, topic: str, records: Sequence[Raw]) -> list[tuple[int, int]]:
    """Send records in order with a plain producer; return (partition, offset) of each."""

    async def run() -> list[tuple[int, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
        await producer.start()
        try:
            placed = []
            # One at a time: the order on a partition is the order of the list.
            for record in records:
                metadata = await producer.send_and_wait(
                    topic,
                    record.value,
                    key=record.key,
                    partition=record.partition,
                    headers=list(record.headers) or None,
                )
                placed.append((metadata.partition, metadata.offset))
            return placed
        finally:
            await producer.stop()

    return asyncio.run(asyncio.wait_for(run(), timeout=60))


async def _partitions(settings: Settings, topic: str) -> list[TopicPartition]:
    # A consumer's partitions_for_topic only knows topics it already fetched metadata for;
    # the admin client asks the cluster.
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        for _ in range(50):
            (described,) = await admin.describe_topics([topic])
            if described["partitions"] and not described["error_code"]:
                return [
                    TopicPartition(topic, partition["partition"])
                    for partition in sorted(described["partitions"], key=lambda p: p["partition"])
                ]
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    raise AssertionError(f"topic {topic} has no partitions after 10 s")


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Return the end offset of every partition of ``topic`` (0 everywhere: never written)."""

    async def run() -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = await _partitions(settings, topic)
            ends = await consumer.end_offsets(partitions)
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            await consumer.stop()

    return asyncio.run(asyncio.wait_for(run(), timeout=60))


def read_topic(
    settings: Settings, topic: str, at_least: int = 0, timeout: float = 60
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topic`` from earliest to its end, once it holds ``at_least`` records.

    Raise AssertionError if it still holds fewer after ``timeout`` seconds.
    """

    async def run() -> list[ConsumerRecord[bytes, bytes]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            partitions = await _partitions(settings, topic)
            consumer.assign(partitions)
            deadline = time.monotonic() + timeout
            while True:
                ends = await consumer.end_offsets(partitions)
                if sum(ends.values()) >= at_least:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{topic} holds {sum(ends.values())} records, expected {at_least} within {timeout:.0f} s"
                    )
                await asyncio.sleep(0.25)
            await consumer.seek_to_beginning(*partitions)
            records: list[ConsumerRecord[bytes, bytes]] = []
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                if time.monotonic() > deadline + 30:
                    raise AssertionError(f"could not read {topic} to its end offsets {ends}")
                batches = await consumer.getmany(timeout_ms=500)
                for batch in batches.values():
                    records.extend(batch)
            return sorted(records, key=lambda record: (record.partition, record.offset))
        finally:
            await consumer.stop()

    return asyncio.run(asyncio.wait_for(run(), timeout=timeout + 60))
