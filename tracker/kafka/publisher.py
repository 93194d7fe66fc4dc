"""Publish validated events to the events topic: acks=all, idempotent, routed by fold key."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NoError,
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.protocol.metadata import MetadataRequest

from tracker.core.events import Event
from tracker.core.routing import Router, series_of
from tracker.errors import InfrastructureError, PublishError
from tracker.kafka.client_config import client_options
from tracker.kafka.partitioning import partitioner
from tracker.kafka.topics import check_partition_count
from tracker.settings import Settings

__all__ = ["BROADCAST_HEADER", "TOPIC_MISSING", "Connect", "Publisher", "Receipt", "connect_producer", "encode_event"]

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
UNREACHABLE_CODES = frozenset({"Timeout", "Unreachable"})

#: The code of the PublishError ``start`` raises when the broker does not know the events topic.
TOPIC_MISSING = UnknownTopicOrPartitionError.__name__


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
    """Return the record value: the event as compact JSON (UTF-8 as is), its id first, no nulls."""
    text = event.model_dump_json(exclude_none=True)  # ``id`` is the model's first field
    if event.id is None:  # put the derived id where a given one would be
        text = '{"id":' + json.dumps(event.event_id) + "," + text[1:]
    return text.encode()


def record_key(router: Router, event: Event) -> str:
    """Return the record key of a fact: the fold key of its subject."""
    series = series_of(event)
    assert series is not None
    return router.fold_key(series.subject)


#: Connect a started producer for the events topic (the Kafka client, or a test's stand-in).
Connect = Callable[[Settings], Awaitable[AIOKafkaProducer]]


class Publisher:
    """An idempotent producer for the events topic; use it as an async context manager."""

    def __init__(self, settings: Settings, router: Router, connect: Connect | None = None) -> None:
        self.settings = settings
        self.router = router
        # The seam where a test hands over a stand-in for the Kafka client.
        self.connect: Connect = connect or connect_producer
        self._producer: AIOKafkaProducer | None = None
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
        """Connect to the cluster; raise PublishError when it cannot be reached or has no events topic.

        A missing events topic is a PublishError with code TOPIC_MISSING, answered at
        once: the caller may create the topics (``ensure_topics``) and start again. An
        events topic with another partition count than the settings' is an InfrastructureError.
        """
        self._producer = await self.connect(self.settings)

    async def stop(self) -> None:
        """Flush and disconnect; give up on the flush after STOP_SECONDS.

        Every record was already answered (acknowledged, or failed with "it may still be
        written"), so a flush that waits for an absent broker only delays the caller.
        """
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await _close(producer)

    async def publish(
        self, events: Sequence[Event], progress: Callable[[int], None] | None = None
    ) -> list[Receipt | PublishError]:
        """Send events, in order, a bounded window at a time; return a receipt or the error for each.

        ``progress``, if given, hears how many records are answered after each window.

        Once a record fails because the broker is unreachable (a timeout or a retriable
        error), the records not yet sent are not sent: each is reported failed at once
        instead of waiting out its own deadline, so a caller hears back within about one
        deadline however long the input is.
        """
        if self._stale:
            await self._renew()
        outcomes: list[Receipt | PublishError] = []
        halted: PublishError | None = None
        # Windows of IN_FLIGHT records: a window is handed to the producer, then awaited as a
        # whole under one deadline, so no record waits for room or an answer past its deadline.
        for start in range(0, len(events), IN_FLIGHT):
            window = events[start : start + IN_FLIGHT]
            if halted is None:
                answered = await self._send_window(window)
                errors = [outcome for outcome in answered if isinstance(outcome, PublishError)]
                # The broker is away, or this producer is out of step with it: stop sending.
                halted = next((e for e in errors if e.code in UNREACHABLE_CODES or self._stale), None)
                outcomes.extend(answered)
            else:
                outcomes.extend(_not_sent(event, halted) for event in window)
            if progress is not None:
                progress(len(outcomes))
        return outcomes

    async def _renew(self) -> None:
        """Replace a producer whose idempotence state the broker refuses (a new producer id)."""
        async with self._renewing:
            if not self._stale:
                return  # another caller renewed it
            # The new producer first: a publish running meanwhile keeps a working one.
            fresh = await self.connect(self.settings)
            stale, self._producer, self._stale = self._producer, fresh, False
            if stale is not None:
                await _close(stale)

    async def _send_window(self, events: Sequence[Event]) -> list[Receipt | PublishError]:
        """Hand ``events`` to the producer in order, then await their acknowledgements."""
        if self._producer is None:
            raise PublishError("the publisher is stopped", code="Stopped")
        producer, topic = self._producer, self.settings.events_topic
        loop = asyncio.get_running_loop()
        # One deadline covers both steps: waiting for room in the producer's buffer (which
        # fills while the broker is away) and the acknowledgement (retried until it returns).
        deadline = loop.time() + ACK_DEADLINE_SECONDS
        answers: list[asyncio.Future[Any] | PublishError] = []
        try:
            async with asyncio.timeout_at(deadline):
                for event in events:
                    try:
                        answers.append(await producer.send(topic, encode_event(event), key=self._key(event)))
                    except KafkaError as exc:
                        failure = self._failed(event, exc)
                        answers.append(failure)
                        if failure.code in UNREACHABLE_CODES:
                            break
        except TimeoutError:
            answers.append(_timed_out(events[len(answers)]))
        # asyncio.wait, unlike wait_for, leaves the producer's futures alone when the deadline passes.
        pending = [answer for answer in answers if isinstance(answer, asyncio.Future) and not answer.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        outcomes = [self._outcome(event, answer) for event, answer in zip(events, answers, strict=False)]
        if len(outcomes) < len(events):
            cause = outcomes[-1]  # the record that found the broker away stopped the sending
            assert isinstance(cause, PublishError)
            outcomes.extend(_not_sent(event, cause) for event in events[len(outcomes) :])
        return outcomes

    def _key(self, event: Event) -> bytes:
        # A retraction does not know its target's partition: it is written once, and the
        # worker that folds it copies it to every partition (an all-or-nothing write here).
        # What that costs, and why tombstones are kept for good: events/README.md.
        series = series_of(event)
        return (event.event_id if series is None else self.router.fold_key(series.subject)).encode()

    def _outcome(self, event: Event, answer: asyncio.Future[Any] | PublishError) -> Receipt | PublishError:
        if isinstance(answer, PublishError):
            return answer
        if not answer.done():
            answer.add_done_callback(_retrieve)  # answered later, to nobody: no "never retrieved" warning
            return _timed_out(event)
        if answer.cancelled():
            return PublishError(
                f"{event.event_id}: not acknowledged: cancelled; it may still be written", code="Cancelled"
            )
        exc = answer.exception()
        if exc is not None:
            return self._failed(event, exc)
        metadata = answer.result()
        return Receipt(event.event_id, ((metadata.partition, metadata.offset),))

    def _failed(self, event: Event, exc: BaseException) -> PublishError:
        if isinstance(exc, PRODUCER_STATE_ERRORS):
            self._stale = True
        # The producer's own request timeout is the broker being away too.
        unreachable = isinstance(exc, KafkaTimeoutError) or (isinstance(exc, KafkaError) and exc.retriable)
        code = "Unreachable" if unreachable else type(exc).__name__
        return PublishError(f"{event.event_id}: not acknowledged: {exc}", code=code)


async def connect_producer(settings: Settings) -> AIOKafkaProducer:
    """Return a started producer for the events topic; raise PublishError if the cluster or the topic is missing."""
    # acks=all + idempotence: an acknowledged record is on every in-sync replica,
    # exactly once per producer session. linger batches records for throughput;
    # request_timeout bounds how long a caller waits while the broker is away.
    producer = AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=15000,
        partitioner=partitioner,
        client_id=f"{settings.app_id}-publisher",
    )
    topic = settings.events_topic
    try:
        await producer.start()
        partitions = await _partitions_of(producer, topic)
    except KafkaError as exc:
        await producer.stop()
        raise PublishError(f"cannot reach Kafka at {settings.bootstrap}: {exc}", code=type(exc).__name__) from exc
    if partitions is None:
        await producer.stop()
        raise PublishError(f"topic {topic} does not exist on {settings.bootstrap}", code=TOPIC_MISSING)
    try:
        check_partition_count(topic, len(partitions), settings.partitions)
    except InfrastructureError:
        await producer.stop()
        raise
    return producer


async def _partitions_of(producer: AIOKafkaProducer, topic: str) -> set[int] | None:
    """Return the partitions of ``topic``, or None if the broker does not know it; one metadata request.

    Auto-creation is off in the request: on a cluster with ``auto.create.topics.enable`` the
    producer's own lookup (``partitions_for``) would create the topic with the broker's
    defaults (a 7-day retention on the log of record) instead of ``ensure_topics``' settings,
    and on one without it would retry for the whole request timeout before giving up.
    """
    client = producer.client
    node = client.get_random_node()
    if node is None:  # a broker that answered the bootstrap with no broker list: ask the usual way
        return set(await producer.partitions_for(topic))
    response = await client.send(node, MetadataRequest([topic], allow_auto_topic_creation=False))
    error = for_code(response.topics[0][0]) if response.topics else UnknownTopicOrPartitionError
    if error is UnknownTopicOrPartitionError:
        return None  # answered here: ClusterMetadata would log it as an error on the user's terminal
    if error is not NoError:
        raise error()
    metadata = ClusterMetadata()
    metadata.update_metadata(response)
    partitions = metadata.partitions_for_topic(topic)
    if partitions is None:
        raise KafkaConnectionError(f"no broker answered the metadata of {topic}")
    return set(partitions)


def _timed_out(event: Event) -> PublishError:
    return PublishError(
        f"{event.event_id}: not acknowledged within {ACK_DEADLINE_SECONDS:.0f} s; it may still be written "
        "(publishing it again is harmless: same id)",
        code="Timeout",
    )


def _not_sent(event: Event, cause: PublishError) -> PublishError:
    return PublishError(f"{event.event_id}: not sent, an earlier record failed: {cause}", code="NotSent")


async def _close(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout=STOP_SECONDS)
    except TimeoutError:
        # The flush was abandoned part way: close the connections it would have closed.
        with contextlib.suppress(KafkaError, OSError):
            await producer.client.close()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
