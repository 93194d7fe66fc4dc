"""Publish validated events to the events topic: acks=all, idempotent, routed by fold key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from tracker.core.events import Event
from tracker.core.routing import Router, series_of
from tracker.errors import PublishError
from tracker.kafka.client_config import client_options
from tracker.kafka.partitioning import partitioner
from tracker.settings import Settings

__all__ = ["BROADCAST_HEADER", "Publisher", "Receipt", "encode_event"]

#: Set on each copy of a retraction that a worker sent to every partition.
BROADCAST_HEADER = ("tracker-route", b"broadcast")

#: Longest a caller waits for the broker's acknowledgement of one record.
ACK_DEADLINE_SECONDS = 20.0


@dataclass(frozen=True)
class Receipt:
    """Where the broker stored an event: its id, and partition/offset per copy."""

    event_id: str
    placements: tuple[tuple[int, int], ...]

    @property
    def partition(self) -> int:
        """Return the partition of the first copy."""
        return self.placements[0][0]

    @property
    def offset(self) -> int:
        """Return the offset of the first copy."""
        return self.placements[0][1]


def encode_event(event: Event) -> bytes:
    """Return the record value: the event as compact JSON, its id filled in."""
    data: dict[str, Any] = {
        "id": event.event_id,
        **event.model_dump(mode="json", exclude_none=True),
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def record_key(router: Router, event: Event) -> str:
    """Return the record key of a fact: the fold key of its subject."""
    series = series_of(event)
    assert series is not None
    return router.fold_key(series.subject)


class Publisher:
    """An idempotent producer for the events topic; use it as an async context manager."""

    def __init__(self, settings: Settings, router: Router) -> None:
        self.settings = settings
        self.router = router
        self._producer: AIOKafkaProducer | None = None
        self._partitions: int = settings.partitions

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect to the cluster; raise PublishError when it cannot be reached."""
        # acks=all + idempotence: an acknowledged record is on every in-sync replica,
        # exactly once per producer session. linger batches records for throughput;
        # request_timeout bounds how long a caller waits while the broker is away.
        producer = AIOKafkaProducer(
            **client_options(self.settings),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
            request_timeout_ms=15000,
            partitioner=partitioner,
            client_id=f"{self.settings.app_id}-publisher",
        )
        try:
            await producer.start()
            partitions = await producer.partitions_for(self.settings.events_topic)
        except KafkaError as exc:
            await producer.stop()
            raise PublishError(
                f"cannot reach Kafka at {self.settings.bootstrap}: {exc}", code=type(exc).__name__
            ) from exc
        self._partitions = len(partitions)
        self._producer = producer

    async def stop(self) -> None:
        """Flush and disconnect."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, events: Sequence[Event]) -> list[Receipt | PublishError]:
        """Send events concurrently; return a receipt or the error for each, in order."""
        return list(await asyncio.gather(*(self._send(event) for event in events)))

    async def _send(self, event: Event) -> Receipt | PublishError:
        assert self._producer is not None, "Publisher.start() was not called"
        value = encode_event(event)
        # A retraction does not know its target's partition: it is written once, and the
        # worker that folds it copies it to every partition (an all-or-nothing write here).
        series = series_of(event)
        key = event.event_id if series is None else self.router.fold_key(series.subject)
        try:
            future = await self._producer.send(self.settings.events_topic, value, key=key.encode())
            # A record already sent when the broker went away is retried until it returns:
            # the caller hears "failed" within the deadline instead of waiting for that.
            metadata = [await asyncio.wait_for(future, timeout=ACK_DEADLINE_SECONDS)]
        except TimeoutError:
            return PublishError(
                f"{event.event_id}: not acknowledged within {ACK_DEADLINE_SECONDS:.0f} s; it may still be written "
                "(publishing it again is harmless: same id)",
                code="Timeout",
            )
        except KafkaError as exc:
            return PublishError(f"{event.event_id}: not acknowledged: {exc}", code=type(exc).__name__)
        return Receipt(event.event_id, tuple((m.partition, m.offset) for m in metadata))
