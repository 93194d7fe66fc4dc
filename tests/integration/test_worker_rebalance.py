"""The worker's Faust wiring at the end of a rebalance: no stream record before the seek to committed offsets.

Faust announces the end of recovery (``on_rebalance_complete``), then resumes
the stream partitions and seeks them to their committed offsets. Records
delivered in between made a restarted worker commit one offset per commit
interval (docs/reliability.md, bug 6). The worker stops the flow on that
signal, and Faust resumes it after the seek, but only when the seek rewinds
every partition: a partition without a committed offset is not rewound, and
what the stopped flow dropped there would be lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from tracker.kafka.topics import ensure_topics
from tracker.settings import Settings
from tracker.worker.app import Worker, build_worker

pytestmark = pytest.mark.integration


def commit(settings: Settings, offsets: dict[int, int]) -> None:
    """Commit ``offsets`` (partition: offset) of the events topic for the fold's consumer group."""

    async def run() -> None:
        await ensure_topics(settings)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap, group_id=settings.faust_app_id, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = {TopicPartition(settings.events_topic, p): offset for p, offset in offsets.items()}
            consumer.assign(list(partitions))
            await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in partitions.items()})
        finally:
            await consumer.stop()

    asyncio.run(asyncio.wait_for(run(), timeout=60))


def flow_after_recovery(worker: Worker) -> bool:
    """Return whether the stream flow is on after Faust's recovery announces its end."""
    consumer = worker.app.consumer
    consumer.resume_flow()  # as Faust leaves it once the changelogs are read
    asyncio.run(worker.app.on_rebalance_complete.send())
    return bool(consumer.flow_active)


def test_the_flow_waits_for_the_seek_when_every_partition_has_a_committed_offset(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    commit(settings, dict.fromkeys(range(settings.partitions), 5))
    worker = build_worker(settings)  # never started: only its wiring is exercised

    flowing = flow_after_recovery(worker)

    assert not flowing


def test_the_flow_stays_on_when_a_partition_has_no_committed_offset(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    commit(settings, dict.fromkeys(range(1, settings.partitions), 5))
    worker = build_worker(settings)

    flowing = flow_after_recovery(worker)

    assert flowing
