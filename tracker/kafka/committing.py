"""Consume a topic in a consumer group, committing an offset only once every record before it is done.

Alert transitions are handed to delivery queues and finish in any order; the
group's committed offset stops at the first record still in flight, so a
crash re-reads exactly what was not finished (the delivery ledger drops what a
re-read sends twice).

A Faust agent cannot give this: it commits the offsets of what it has taken from
its stream (``take_events`` acks a batch when the next one is asked for), not of
what has finished later in other tasks, and an agent that waited for the
registries lost the records fetched meanwhile (Faust clears its queues when it
resumes after recovery).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from tracker.kafka.client_config import client_options
from tracker.settings import Settings

__all__ = ["CommittingConsumer", "Handler"]

logger = logging.getLogger(__name__)

#: Called with a record's value and the callback that marks the record done.
Handler = Callable[[bytes, Callable[[], None]], None]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: CommittingConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.owner.commit()
        for tp in revoked:
            self.owner.forget(tp)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Nothing to do: positions start at the group's committed offsets."""


class CommittingConsumer:
    """A group consumer that commits the highest offset below which every record is done."""

    def __init__(self, settings: Settings, topic: str, group_id: str, handle: Handler) -> None:
        self.settings = settings
        self.topic = topic
        self.group_id = group_id
        self.handle = handle
        self._pending: dict[TopicPartition, dict[int, bool]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Join the group and start handing records over."""
        self._consumer = AIOKafkaConsumer(
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **client_options(self.settings),
        )
        self._consumer.subscribe([self.topic], listener=_Listener(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=500)
            for tp, records in batches.items():
                pending = self._pending.setdefault(tp, {})
                for record in records:
                    pending[record.offset] = False
                    if record.value is None:
                        pending[record.offset] = True
                        continue
                    self.handle(record.value, functools.partial(self._done, tp, record.offset, pending))
            await self.commit()

    def _done(self, tp: TopicPartition, offset: int, pending: dict[int, bool]) -> None:
        # A record of a partition revoked since is not ours to commit any more.
        if self._pending.get(tp) is pending and offset in pending:
            pending[offset] = True

    async def commit(self) -> None:
        """Commit, per partition, the offset after the last record of an unbroken run of done ones."""
        if self._consumer is None:
            return
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, pending in self._pending.items():
            finished = None
            for offset in sorted(pending):
                if not pending[offset]:
                    break
                finished = offset
                del pending[offset]
            if finished is not None:
                offsets[tp] = OffsetAndMetadata(finished + 1, "")
        if offsets:
            try:
                await self._consumer.commit(offsets)
            except Exception:  # a rebalance in progress: the next commit carries the same offsets
                logger.warning("commit of %s deferred", self.topic, exc_info=True)
                for tp, meta in offsets.items():
                    self._pending.setdefault(tp, {})[meta.offset - 1] = True

    def forget(self, tp: TopicPartition) -> None:
        """Drop the bookkeeping of a partition this consumer no longer owns."""
        self._pending.pop(tp, None)

    async def stop(self) -> None:
        """Commit what is done and leave the group."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self.commit()
            await self._consumer.stop()
