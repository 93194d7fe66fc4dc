"""Read records back from the events topic by position: the documents behind a page of facts.

The events topic is the record of truth (append-only, kept for good), so the
state keeps only each fact's offset and a reader fetches the documents of one
page at a time. Offsets close together are read in one run from a single
seek; every wait is bounded, and a record not found in time is simply absent
from the answer (the caller falls back to what the state knows).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from tracker.errors import InfrastructureError
from tracker.kafka.client_config import client_options
from tracker.settings import Settings

__all__ = ["LogReader"]

#: Offsets at most this far apart are read in one run rather than with a new seek: reading
#: a few hundred small records costs less than a round trip per fact.
RUN_GAP = 200
#: Longest wait for one run of records.
RUN_TIMEOUT_SECONDS = 5.0


class LogReader:
    """Fetch records of one topic by (partition, offset), with one lazily started consumer."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self._consumer: AIOKafkaConsumer | None = None
        # assign and seek change the consumer: one page is read at a time.
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **client_options(self.settings)
            )
            try:
                await consumer.start()
            except KafkaError as exc:
                raise InfrastructureError(f"cannot read {self.topic}: {exc}", code=type(exc).__name__) from exc
            self._consumer = consumer
        return self._consumer

    async def read(self, positions: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Return the value of each record found at the given (partition, offset) positions."""
        by_partition: dict[int, set[int]] = {}
        for partition, offset in positions:
            by_partition.setdefault(partition, set()).add(offset)
        found: dict[tuple[int, int], bytes] = {}
        if not by_partition:
            return found
        async with self._lock:
            consumer = await self._started()
            for partition, offsets in sorted(by_partition.items()):
                tp = TopicPartition(self.topic, partition)
                consumer.assign([tp])
                for run in _runs(sorted(offsets)):
                    await self._read_run(consumer, tp, run, found)
        return found

    async def _read_run(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, run: list[int], found: dict[tuple[int, int], bytes]
    ) -> None:
        consumer.seek(tp, run[0])
        wanted = set(run)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RUN_TIMEOUT_SECONDS
        while wanted and loop.time() < deadline:
            left = max(1, int((deadline - loop.time()) * 1000))
            batch = await consumer.getmany(tp, timeout_ms=min(left, 1000), max_records=run[-1] - run[0] + 1)
            for record in batch.get(tp, []):
                if record.offset in wanted and record.value is not None:
                    found[tp.partition, record.offset] = record.value
                wanted.discard(record.offset)
                if record.offset >= run[-1]:
                    return

    async def close(self) -> None:
        """Stop the consumer if it was started."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


def _runs(offsets: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for offset in offsets:
        if runs and offset - runs[-1][-1] <= RUN_GAP:
            runs[-1].append(offset)
        else:
            runs.append([offset])
    return runs
