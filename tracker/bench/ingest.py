"""Put a workload on the events topic the ways users do: ``tracker publish`` (the publisher) and POST /v1/events."""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from aiokafka import AIOKafkaProducer

from tracker.bench.workload import Workload
from tracker.core.decode import decode_event
from tracker.errors import EventValidationError, TrackerError
from tracker.kafka.client_config import client_options
from tracker.kafka.publisher import Publisher
from tracker.rules_file import build_router
from tracker.settings import Settings
from tracker.worker.launch import WorkerProcess

__all__ = ["HTTP_BATCH", "HTTP_CONNECTIONS", "http_ingest", "publish_workload"]

#: Records per HTTP ingestion request (the NDJSON batch of issue 6).
HTTP_BATCH = 1000

#: Requests in flight at once in the concurrent HTTP ingestion figure: a demanding client.
HTTP_CONNECTIONS = 4


async def publish_workload(settings: Settings, workload: Workload) -> tuple[float, int]:
    """Publish every record as a user would: validated events through the publisher, raw junk raw."""
    router = build_router(settings)
    events = []
    junk = []
    for raw in workload.records:
        try:
            events.append(decode_event(raw))
        except EventValidationError:
            junk.append(raw)
    started = time.perf_counter()
    async with Publisher(settings, router) as publisher:
        for start in range(0, len(events), 10_000):
            failures = [r for r in await publisher.publish(events[start : start + 10_000]) if isinstance(r, Exception)]
            if failures:
                raise TrackerError(f"publish failed: {failures[0]}")
    elapsed = time.perf_counter() - started
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        for raw in junk:
            await producer.send(settings.events_topic, raw, key=b"junk")
        await producer.flush()
    finally:
        await producer.stop()
    return elapsed, len(events)


def http_ingest(worker: WorkerProcess, workload: Workload, connections: int) -> tuple[float, int]:
    """POST 20,000 records as NDJSON batches of 1,000, ``connections`` at a time; return (events/s, sent)."""
    valid = [raw for raw in workload.records[:20_000] if raw.startswith(b"{")]
    bodies = [b"\n".join(valid[start : start + HTTP_BATCH]) for start in range(0, len(valid), HTTP_BATCH)]

    def post(body: bytes) -> None:
        request = urllib.request.Request(f"{worker.url}/v1/events", data=body, method="POST")
        # urlopen raises on 503 (a record failed) and 422 (none accepted): no figure then.
        with urllib.request.urlopen(request, timeout=60) as response:
            document = json.loads(response.read())
        if document["failed"] or document["accepted"] + document["rejected"] != body.count(b"\n") + 1:
            raise TrackerError(f"HTTP ingestion did not answer every record: {document['failed']} failed")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=connections) as pool:
        for _ in pool.map(post, bodies):
            pass
    return len(valid) / (time.perf_counter() - started), len(valid)
