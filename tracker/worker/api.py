"""The worker's HTTP API: ingest events, read signals. Faust serves it next to /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tracker.core.catalogue import Signal
from tracker.core.decode import Record, split_records
from tracker.core.events import Event
from tracker.errors import InputFormatError, PublishError, TooManyRecords
from tracker.kafka.publisher import Receipt
from tracker.settings import Settings

__all__ = [
    "LISTED_REJECTIONS",
    "EventPublisher",
    "Ingestion",
    "TooLarge",
    "ingest_body",
    "read_limited",
    "signals_document",
]

#: Rejected records an answer lists in full; the others are counted in ``rejected`` and ``omitted``.
LISTED_REJECTIONS = 100
#: Longest stretch of decoding between two turns of the event loop (other requests, /healthz, the fold).
DECODE_SLICE_SECONDS = 0.01


class TooLarge(Exception):
    """The request body is above the configured limit."""


async def read_limited(content: Any, limit: int) -> bytes:
    """Read an aiohttp body stream, refusing it as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)


class EventPublisher(Protocol):
    """What ingestion publishes through: ``tracker.kafka.publisher.Publisher``, or a test's recorder."""

    async def start(self) -> None:
        """Connect; raise PublishError when the cluster cannot be reached."""

    async def stop(self) -> None:
        """Disconnect."""

    async def publish(self, events: Sequence[Event]) -> list[Receipt | PublishError]:
        """Send events in order; return a receipt or the error for each."""
        ...


@dataclass
class Ingestion:
    """Validate and publish posted events, one lazily started publisher per worker."""

    settings: Settings
    publisher: EventPublisher
    _started: bool = False
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def publisher_ready(self) -> EventPublisher:
        """Start the publisher on first use."""
        async with self._lock:
            if not self._started:
                await self.publisher.start()
                self._started = True
        return self.publisher

    async def close(self) -> None:
        """Stop the publisher if it was started."""
        if self._started:
            await self.publisher.stop()
            self._started = False


async def ingest_body(ingestion: Ingestion, body: bytes) -> tuple[int, dict[str, Any]]:
    """Validate a body and publish its valid records; return (HTTP status, response document)."""
    limit = ingestion.settings.max_records_per_request
    try:
        records = await _decoded(body, limit)
    except TooManyRecords as exc:
        return 413, {"error": f"{exc} in one request (TRACKER_MAX_RECORDS_PER_REQUEST): send fewer at a time"}
    except InputFormatError as exc:
        return 400, {"error": str(exc)}
    valid = [record for record in records if record.event is not None]
    receipts: list[Receipt | PublishError] = []
    if valid:
        try:
            publisher = await ingestion.publisher_ready()
            receipts = await publisher.publish([record.event for record in valid if record.event])
        except PublishError as exc:
            receipts = [exc] * len(valid)
    by_line = {record.line: receipt for record, receipt in zip(valid, receipts, strict=True)}
    results: list[dict[str, Any]] = []
    accepted = failed = rejected = 0
    for record in records:
        if record.event is None:
            rejected += 1
            if rejected <= LISTED_REJECTIONS:
                errors = [{"path": error.path, "reason": error.reason} for error in record.errors]
                results.append({"line": record.line, "status": "rejected", "errors": errors})
            continue
        receipt = by_line[record.line]
        if isinstance(receipt, Receipt):
            accepted += 1
            placements = [{"partition": p, "offset": o} for p, o in receipt.placements]
            results.append(
                {
                    "line": record.line,
                    "status": "accepted",
                    "id": receipt.event_id,
                    "partition": receipt.partition,
                    "offset": receipt.offset,
                    "placements": placements,
                }
            )
        else:
            failed += 1
            results.append(
                {"line": record.line, "status": "failed", "id": record.event.event_id, "error": str(receipt)}
            )
    omitted = rejected - min(rejected, LISTED_REJECTIONS)
    summary = {"accepted": accepted, "rejected": rejected, "failed": failed, "omitted": omitted, "results": results}
    if failed:
        return 503, summary
    if records and not accepted:
        return 422, summary
    return 202, summary


async def _decoded(body: bytes, limit: int) -> list[Record]:
    """Split and validate a body, giving the event loop a turn every DECODE_SLICE_SECONDS."""
    loop = asyncio.get_running_loop()
    records: list[Record] = []
    until = loop.time() + DECODE_SLICE_SECONDS
    for record in split_records(body, limit):
        records.append(record)
        if loop.time() >= until:
            await asyncio.sleep(0)
            until = loop.time() + DECODE_SLICE_SECONDS
    return records


def signals_document(signals: list[Signal], match: Callable[[Signal], bool]) -> dict[str, Any]:
    """Return signals as JSON: name, labels and value of each."""
    return {
        "signals": [
            {"name": signal.name, "labels": dict(signal.labels), "value": signal.value}
            for signal in signals
            if match(signal)
        ]
    }
