"""Table values written to a changelog in record batches read back as the latest value of each key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tracker.kafka.changelog import end_offsets, read_changelogs, send_values
from tracker.kafka.topics import MAX_TABLE_VALUE_BYTES, ensure_topics
from tracker.settings import Settings

pytestmark = pytest.mark.integration


async def write_then_read(
    settings: Settings, rounds: list[dict[str, bytes | None]]
) -> tuple[dict[str, bytes], int, int]:
    """Write each round to partition 1 of the series changelog; return what reads back, the end and records read."""
    topic = settings.changelog_topics[0]
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        max_batch_size=16 * 1024,
        max_request_size=MAX_TABLE_VALUE_BYTES,
    )
    reader = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    await producer.start()
    await reader.start()
    try:
        last_end = 0
        for values in rounds:
            sent = await send_values(producer, topic, 1, values)
            for future, count in sent:
                metadata = await future
                last_end = max(last_end, metadata.offset + count)
        tp = TopicPartition(topic, 1)
        ends = await end_offsets(reader, [tp, TopicPartition(topic, 0)])
        values, read = await read_changelogs(reader, ends)
        assert values[TopicPartition(topic, 0)] == {}
        assert ends[tp] == last_end
        return values[tp], ends[tp], read[tp]
    finally:
        await reader.stop()
        await producer.stop()


def test_the_last_value_of_each_key_wins_and_a_tombstone_deletes(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    asyncio.run(ensure_topics(settings))
    first = {f"k{n}": f"v{n}-1".encode() for n in range(3000)}
    second: dict[str, bytes | None] = {f"k{n}": f"v{n}-2".encode() for n in range(0, 3000, 2)}
    second["k1"] = None
    # Bigger than a whole batch (16 KB here): it goes alone in a batch of its own.
    big = {"big": b"x" * 100_000}

    values, end, read = asyncio.run(write_then_read(settings, [first, second, big]))

    assert end == read == 3000 + 1500 + 1 + 1
    assert values["k0"] == b"v0-2" and values["k3"] == b"v3-1" and values["k2998"] == b"v2998-2"
    assert "k1" not in values
    assert values["big"] == big["big"]
    assert len(values) == 3000 - 1 + 1
