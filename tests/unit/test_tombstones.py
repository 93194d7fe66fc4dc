"""Tombstones of retractions: kept for good, even for ids never seen, and counted per partition (issue 14: 9)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tracker.core.decode import validate_event
from tracker.core.events import Event
from tracker.core.fold import FoldBatch, SeriesValue, count_tombstones, live_facts, tombstones_key
from tracker.core.routing import Router
from tracker.worker.metrics import TombstoneCollector

pytestmark = pytest.mark.unit

ROUTER = Router()


def retraction(target_id: str) -> Event:
    """Return a retraction of ``target_id``."""
    return validate_event(
        {
            "type": "event.retracted",
            "target_id": target_id,
            "reason": "probe",
            "occurred_on": "2025-12",
            "source": {"name": "desk"},
        }
    )


def usage(event_id: str) -> Event:
    """Return a usage fact with the given id."""
    return validate_event(
        {
            "type": "usage.reported",
            "id": event_id,
            "entity": "bytedance",
            "metric": "tokens_per_day",
            "value": {"value": 3e13, "unit": "tokens_per_day"},
            "occurred_on": "2025-10",
            "source": {"name": "desk"},
        }
    )


def fold(table: dict[str, SeriesValue], partition: int, events: list[Event]) -> None:
    """Fold events as one worker batch on ``partition`` and write the changed keys back."""
    holders: dict[str, set[str]] = {}
    for key, value in table.items():
        for event_id in value["facts"]:
            holders.setdefault(event_id, set()).add(key)
    batch = FoldBatch(
        ROUTER,
        table.get,
        lambda event_id: holders.get(event_id, set()),
        functools.partial(tombstones_key, partition),
    )
    for event in events:
        batch.apply(event, event.event_id)
    table.update(batch.changed)


def test_every_retraction_of_an_unknown_id_is_counted_on_its_partition() -> None:
    # Arrange
    table: dict[str, SeriesValue] = {}

    # Act: 500 retractions of ids never seen, broadcast to partitions 0 and 1; one more on 1.
    fold(table, 0, [retraction(f"missing-{n}") for n in range(500)])
    fold(table, 1, [retraction(f"missing-{n}") for n in range(501)])

    # Assert
    assert count_tombstones(table.get, 0) == 500
    assert count_tombstones(table.get, 1) == 501
    assert count_tombstones(table.get, 2) == 0


def test_a_tombstone_is_kept_after_its_fact_arrived_dead() -> None:
    # Arrange: the retraction first, then the fact it retracts.
    table: dict[str, SeriesValue] = {}
    fold(table, 0, [retraction("late-fact")])

    # Act
    fold(table, 0, [usage("late-fact")])

    # Assert: the fact is dead, and the tombstone stays (a copy of the fact may arrive in another series).
    series = [value for key, value in table.items() if not key.startswith("#")]
    assert [list(live_facts(value)) for value in series] == [[]]
    assert count_tombstones(table.get, 0) == 1


def test_retracting_one_id_twice_keeps_one_tombstone() -> None:
    # Arrange
    table: dict[str, SeriesValue] = {}

    # Act
    fold(table, 0, [retraction("twice"), retraction("twice")])
    fold(table, 0, [retraction("twice")])

    # Assert
    assert count_tombstones(table.get, 0) == 1


def test_the_collector_exports_the_count_of_each_owned_partition() -> None:
    # Arrange
    counts: dict[int, int] = {0: 20_000, 3: 7}
    registry = CollectorRegistry()
    registry.register(TombstoneCollector(lambda: counts))

    # Act
    samples: dict[str, Any] = {
        partition: registry.get_sample_value("tracker_retraction_tombstones", {"partition": partition})
        for partition in ("0", "1", "3")
    }

    # Assert
    assert samples == {"0": 20_000.0, "1": None, "3": 7.0}
