"""A compacted topic read into a dict by a consumer outside any group, kept current.

Every worker needs every subscription and every delivery mark, whatever
partitions it owns, so these are read with manual assignment from the first
offset, not through a consumer group.

Why not a Faust ``GlobalTable``: subscriptions are written by HTTP handlers
and delivery marks by delivery tasks, outside any stream iteration, and the
worker's tables live in RocksDB, whose Faust store files a write under the
partition of the current event and asserts there is one
(``faust/stores/rocksdb.py`` ``_set``; robinhood/faust#478); a table written
outside stream iteration also needs ``use_partitioner=True``
(``faust/tables/base.py`` ``partition_for_key``). A global table on the memory
store with the partitioner may do; it was not tried in the round that moved the
fold onto Faust (issue 15).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from tracker.errors import InfrastructureError
from tracker.kafka.client_config import client_options
from tracker.kafka.partitioning import partitioner
from tracker.settings import Settings

__all__ = ["TopicTail", "TopicView"]


class TopicView:
    """The latest value of every key of a compacted topic; ``put`` writes through the topic."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.data: dict[str, bytes] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self.listeners: list[Callable[[str, bytes | None], None]] = []

    async def start(self, timeout: float = 30) -> None:
        """Read the topic up to its end, then keep following it in the background."""
        self._consumer = AIOKafkaConsumer(**client_options(self.settings), group_id=None, enable_auto_commit=False)
        self._producer = AIOKafkaProducer(
            **client_options(self.settings),
            acks="all",
            enable_idempotence=True,
            partitioner=partitioner,
            request_timeout_ms=15000,
        )
        try:
            await self._consumer.start()
            await self._producer.start()
            # The producer fetches a topic's metadata on demand; the consumer would not.
            partitions = await self._producer.partitions_for(self.topic)
            if not partitions:
                raise InfrastructureError(f"topic {self.topic} does not exist: run the worker once to create it")
            assigned = [TopicPartition(self.topic, partition) for partition in sorted(partitions)]
            self._consumer.assign(assigned)
            await self._consumer.seek_to_beginning(*assigned)
            ends = await self._consumer.end_offsets(assigned)
        except KafkaError as exc:
            await self.stop()
            raise InfrastructureError(f"cannot read {self.topic}: {exc}", code=type(exc).__name__) from exc
        self._task = asyncio.create_task(self._follow())
        async with asyncio.timeout(timeout):
            for tp, end in ends.items():
                while await self._consumer.position(tp) < end:
                    await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop following the topic."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in (self._consumer, self._producer):
            if client is not None:
                await client.stop()

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            if not batches:
                continue
            async with self._changed:
                for records in batches.values():
                    for record in records:
                        key = record.key.decode()
                        if record.value is None:
                            self.data.pop(key, None)
                        else:
                            self.data[key] = record.value
                        for listener in self.listeners:
                            listener(key, record.value)
                self._changed.notify_all()

    async def put(self, key: str, value: bytes | None, timeout: float = 15) -> None:
        """Write a key (None deletes it) and wait until this view has read it back."""
        assert self._producer is not None, "TopicView.start() was not called"
        try:
            await self._producer.send_and_wait(self.topic, value, key=key.encode())
        except KafkaError as exc:
            raise InfrastructureError(f"cannot write {self.topic}: {exc}", code=type(exc).__name__) from exc
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.data.get(key) == value)


class TopicTail:
    """Follow a topic from its end, calling ``listener`` with every new record value."""

    def __init__(self, settings: Settings, topic: str, listener: Callable[[bytes], None]) -> None:
        self.settings = settings
        self.topic = topic
        self.listener = listener
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Position at the end of every partition and start following."""
        self._consumer = AIOKafkaConsumer(**client_options(self.settings), group_id=None, enable_auto_commit=False)
        try:
            await self._consumer.start()
            # ensure_topics created this topic with exactly this many partitions.
            partitions = range(self.settings.partitions)
            assigned = [TopicPartition(self.topic, partition) for partition in sorted(partitions)]
            self._consumer.assign(assigned)
            await self._consumer.seek_to_end(*assigned)
            for tp in assigned:
                await self._consumer.position(tp)
        except KafkaError as exc:
            await self._consumer.stop()
            raise InfrastructureError(f"cannot follow {self.topic}: {exc}", code=type(exc).__name__) from exc
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if record.value is not None:
                        self.listener(record.value)

    async def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
