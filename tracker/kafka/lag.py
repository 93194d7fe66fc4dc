"""Consumer lag of the fold, measured against the broker: end offset minus committed offset.

Faust's own view of the end offset is refreshed only when its consumer
fetches, so a stuck worker would show a frozen lag; asking the broker every
few seconds shows a growing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from tracker.errors import InfrastructureError
from tracker.kafka.client_config import client_options
from tracker.settings import Settings

__all__ = ["LagProbe", "committed_offsets", "fold_lag"]

logger = logging.getLogger(__name__)


class LagProbe:
    """Poll end and committed offsets of the events topic for the fold's consumer group."""

    def __init__(self, settings: Settings, group_id: str, interval: float = 5.0) -> None:
        self.settings = settings
        self.group_id = group_id
        self.interval = interval
        self.lag: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Start polling in the background."""
        # Never subscribes, so it never joins the group: it only reads the group's commits.
        self._consumer = AIOKafkaConsumer(
            **client_options(self.settings), group_id=self.group_id, enable_auto_commit=False
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        assert self._consumer is not None
        partitions = [TopicPartition(self.settings.events_topic, p) for p in range(self.settings.partitions)]
        while True:
            try:
                ends = await self._consumer.end_offsets(partitions)
                for tp in partitions:
                    committed = await self._consumer.committed(tp) or 0
                    self.lag[tp.partition] = max(0, ends[tp] - committed)
            except KafkaError as exc:
                logger.warning("cannot measure consumer lag: %s", exc)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


async def committed_offsets(settings: Settings, group_id: str) -> dict[int, int | None]:
    """Return the offset ``group_id`` has committed on each events-topic partition (None: never committed)."""
    # Never subscribes, so it never joins (or disturbs) the group.
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=group_id, enable_auto_commit=False)
    try:
        await consumer.start()
        partitions = [TopicPartition(settings.events_topic, p) for p in range(settings.partitions)]
        return {tp.partition: await consumer.committed(tp) for tp in partitions}
    except KafkaError as exc:
        raise InfrastructureError(
            f"cannot read the offsets committed by {group_id}: {exc}", code=type(exc).__name__
        ) from exc
    finally:
        await consumer.stop()


async def fold_lag(settings: Settings, group_id: str) -> int:
    """Return how many records of the events topic ``group_id`` has not committed yet, over every partition."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=group_id, enable_auto_commit=False)
    try:
        await consumer.start()
        partitions = [TopicPartition(settings.events_topic, p) for p in range(settings.partitions)]
        ends = await consumer.end_offsets(partitions)
        lag = 0
        for tp in partitions:
            lag += max(0, ends[tp] - (await consumer.committed(tp) or 0))
        return lag
    except KafkaError as exc:
        raise InfrastructureError(f"cannot read the lag of {group_id}: {exc}", code=type(exc).__name__) from exc
    finally:
        await consumer.stop()
