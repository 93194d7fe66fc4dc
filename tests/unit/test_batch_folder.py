"""The batch folder on a plain dict table: one batch may hold records of several partitions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tracker.core.fold import live_facts
from tracker.core.routing import Router
from tracker.kafka.partitioning import partition_for
from tracker.kafka.publisher import BROADCAST_HEADER
from tracker.worker.folding import BatchFolder, Incoming
from tracker.worker.index import TableIndex
from tracker.worker.metrics import PipelineMetrics

pytestmark = pytest.mark.unit

PARTITIONS = 4


def usage(event_id: str, occurred_on: str, value: float) -> bytes:
    return json.dumps(
        {
            "type": "usage.reported",
            "id": event_id,
            "entity": "acme",
            "metric": "dau",
            "value": {"value": value, "unit": "users"},
            "occurred_on": occurred_on,
            "source": {"name": "test"},
        }
    ).encode()


def retraction(target: str) -> bytes:
    body = {"type": "event.retracted", "id": f"r-{target}", "target_id": target, "reason": "wrong"}
    return json.dumps({**body, "occurred_on": "2025", "source": {"name": "test"}}).encode()


def fact_record(value: bytes, offset: int) -> Incoming:
    home = partition_for("acme", PARTITIONS)
    return Incoming("events", home, offset, b"acme", value, (), None)


def broadcast(value: bytes, offset: int) -> list[Incoming]:
    header = (BROADCAST_HEADER,)
    return [Incoming("events", p, offset, f"#{p}".encode(), value, header, None) for p in range(PARTITIONS)]


def folder_over(table: dict[str, Any]) -> BatchFolder:
    async def send(*args: Any) -> None:
        raise AssertionError(f"nothing should be re-sent: {args[:2]}")

    metrics = PipelineMetrics.create(CollectorRegistry())
    return BatchFolder(Router(), table, send, "events", "dlq", PARTITIONS, metrics, TableIndex(table, PARTITIONS))


def live_ids(table: dict[str, Any]) -> set[str]:
    return {event_id for key, value in table.items() if not key.startswith("#") for event_id, _ in live_facts(value)}


def test_a_retraction_copy_on_another_partition_never_overwrites_the_home_series() -> None:
    table: dict[str, Any] = {}
    folder = folder_over(table)
    asyncio.run(folder.fold([fact_record(usage("old", "2024-01", 1), 0)]))

    # One batch: a new fact of the same series, then the retraction of the old one on every partition.
    asyncio.run(folder.fold([fact_record(usage("new", "2025-01", 2), 1), *broadcast(retraction("old"), 2)]))

    assert live_ids(table) == {"new"}


def test_the_index_only_locates_facts_on_the_asked_partition() -> None:
    table: dict[str, Any] = {}
    folder = folder_over(table)
    asyncio.run(folder.fold([fact_record(usage("old", "2024-01", 1), 0)]))
    home = partition_for("acme", PARTITIONS)

    found = {p: folder.index.locate(p, "old") for p in range(PARTITIONS)}

    assert found[home] == ["acme/usage:acme:dau"]
    assert all(found[p] == [] for p in range(PARTITIONS) if p != home)


class _HashedAsRetracted(str):
    """An id whose hash is that of the id "retracted": the index keys ids by their hash."""

    def __hash__(self) -> int:
        return hash("retracted")


def test_ids_whose_hashes_collide_are_both_located_and_only_the_held_one_retracted() -> None:
    table: dict[str, Any] = {
        "acme/usage:acme:dau": {"facts": {"kept": ["d1", "2024", 1.0]}, "retracted": {}},
        "acme/usage:acme:mau": {"facts": {"retracted": ["d2", "2024", 2.0]}, "retracted": {}},
    }
    folder = folder_over(table)
    home = partition_for("acme", PARTITIONS)
    folder.index.ensure(home)
    folder.index.add_series("acme/usage:acme:dau", [_HashedAsRetracted("kept")])

    # Both keys are candidates; the fold checks which series really holds the id.
    assert sorted(folder.index.locate(home, "retracted")) == ["acme/usage:acme:dau", "acme/usage:acme:mau"]
    asyncio.run(folder.fold(broadcast(retraction("retracted"), 0)))
    assert live_ids(table) == {"kept"}
