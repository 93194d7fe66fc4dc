"""The ceilings: how fast a plain consumer reads the topic, and how fast it can also decode it.

Both read the same records as the worker, in the same run, so the fold's
throughput can be stated as a fraction of what the machine allows.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from tracker.core.decode import decode_event
from tracker.errors import EventValidationError
from tracker.kafka.client_config import client_options
from tracker.settings import Settings

__all__ = ["Ceiling", "read_topic"]


@dataclass(frozen=True)
class Ceiling:
    """Records read, and events per second."""

    records: int
    seconds: float

    @property
    def rate(self) -> float:
        """Return records per second."""
        return self.records / self.seconds if self.seconds > 0 else 0.0


async def read_topic(settings: Settings, topic: str, partitions: int, decode: bool) -> Ceiling:
    """Read a topic from the beginning to its current end; optionally decode every record."""
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, partition) for partition in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        remaining = sum(ends.values())
        started = time.perf_counter()
        records = 0
        while records < remaining:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for batch in batches.values():
                for record in batch:
                    records += 1
                    if decode and record.value is not None:
                        with contextlib.suppress(EventValidationError):
                            decode_event(record.value)
        return Ceiling(records, time.perf_counter() - started)
    finally:
        await consumer.stop()
