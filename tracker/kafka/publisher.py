"""Publish validated events to the events topic: acks=all, idempotent, routed by fold key."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    UnknownProducerId,
)

from tracker.core.events import Event
from tracker.core.routing import Router, series_of
from tracker.errors import PublishError
from tracker.kafka.client_config import client_options
from tracker.kafka.partitioning import partitioner
from tracker.settings import Settings

__all__ = ["BROADCAST_HEADER", "Publisher", "Receipt", "encode_event"]

#: Set on each copy of a retraction that a worker sent to every partition.
BROADCAST_HEADER = ("tracker-route", b"broadcast")

#: Longest a caller waits for one record: room in the producer's buffer, then the acknowledgement.
ACK_DEADLINE_SECONDS = 20.0

#: Records handed to the producer and not yet acknowledged, at most, per publish call.
#: A bound keeps a large file from waiting in the producer's buffer past its deadline.
IN_FLIGHT = 4096

#: Longest ``stop`` waits for records still queued (already reported failed) to be flushed.
STOP_SECONDS = 1.0

#: Broker answers meaning the idempotent producer's sequence numbers are out of step with
#: the broker's, e.g. after its batches expired while the broker was away. aiokafka cannot
#: recover from them (every later record fails the same way), so the producer is replaced.
PRODUCER_STATE_ERRORS = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)

#: Error codes that mean the broker cannot be reached: later records are not sent.
UNREACHABLE = frozenset({"Timeout", "Unreachable"})


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
        self._renewing = asyncio.Lock()
        self._stale = False  # the producer's sequence numbers no longer match the broker's

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
        """Flush and disconnect; give up on the flush after STOP_SECONDS.

        Every record was already answered (acknowledged, or failed with "it may still be
        written"), so a flush that waits for an absent broker only delays the caller.
        """
        if self._producer is not None:
            producer, self._producer = self._producer, None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(producer.stop(), timeout=STOP_SECONDS)

    async def publish(self, events: Sequence[Event]) -> list[Receipt | PublishError]:
        """Send events, in order, a bounded window at a time; return a receipt or the error for each.

        Once a record fails because the broker is unreachable (a timeout or a retriable
        error), the records not yet sent are not sent: each is reported failed at once
        instead of waiting out its own deadline, so a caller hears back within about one
        deadline however long the input is.
        """
        if self._stale:
            await self._renew()
        outcomes: list[Receipt | PublishError | None] = [None] * len(events)
        window = asyncio.Semaphore(IN_FLIGHT)
        broker_away: PublishError | None = None

        async def send(index: int, event: Event) -> None:
            nonlocal broker_away
            async with window:  # FIFO: records reach the producer in input order
                if broker_away is not None:
                    outcomes[index] = PublishError(
                        f"{event.event_id}: not sent, an earlier record failed: {broker_away}", code="NotSent"
                    )
                    return
                outcome = await self._send(event)
                if isinstance(outcome, PublishError) and outcome.code in UNREACHABLE and broker_away is None:
                    broker_away = outcome
                outcomes[index] = outcome

        await asyncio.gather(*(send(index, event) for index, event in enumerate(events)))
        return [outcome for outcome in outcomes if outcome is not None]

    async def _renew(self) -> None:
        """Replace a producer whose idempotence state the broker refuses (a new producer id)."""
        async with self._renewing:
            if not self._stale:
                return  # another caller renewed it
            await self.stop()
            await self.start()
            self._stale = False

    async def _send(self, event: Event) -> Receipt | PublishError:
        assert self._producer is not None, "Publisher.start() was not called"
        producer = self._producer
        value = encode_event(event)
        # A retraction does not know its target's partition: it is written once, and the
        # worker that folds it copies it to every partition (an all-or-nothing write here).
        series = series_of(event)
        key = event.event_id if series is None else self.router.fold_key(series.subject)

        async def enqueue_and_ack() -> Any:
            future = await producer.send(self.settings.events_topic, value, key=key.encode())
            return await future

        try:
            # One deadline covers both steps: waiting for room in the producer's buffer (which
            # fills while the broker is away) and the acknowledgement (retried until it returns).
            metadata = await asyncio.wait_for(enqueue_and_ack(), timeout=ACK_DEADLINE_SECONDS)
        except TimeoutError:
            return PublishError(
                f"{event.event_id}: not acknowledged within {ACK_DEADLINE_SECONDS:.0f} s; it may still be written "
                "(publishing it again is harmless: same id)",
                code="Timeout",
            )
        except KafkaError as exc:
            if isinstance(exc, PRODUCER_STATE_ERRORS):
                self._stale = True
            # The producer's own request timeout is the broker being away too.
            code = "Unreachable" if exc.retriable or isinstance(exc, KafkaTimeoutError) else type(exc).__name__
            return PublishError(f"{event.event_id}: not acknowledged: {exc}", code=code)
        return Receipt(event.event_id, ((metadata.partition, metadata.offset),))
