"""``tracker publish`` creates the topics only when the broker lacks the events topic (publish_events)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tracker.cli import common
from tracker.core.events import Event
from tracker.errors import PublishError
from tracker.kafka import publisher as publisher_module
from tracker.kafka import topics as topics_module
from tracker.kafka.publisher import TOPIC_MISSING, Receipt
from tracker.settings import Settings

pytestmark = pytest.mark.unit


class Broker:
    """What the stand-in publisher and ensure_topics share: whether the topics exist, and what was asked."""

    def __init__(self, topics_exist: bool, start_error: PublishError | None = None) -> None:
        self.topics_exist = topics_exist
        self.start_error = start_error
        self.ensured = 0
        self.starts = 0
        self.published: list[Event] = []


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    broker = Broker(topics_exist=True)

    class StandInPublisher:
        def __init__(self, settings: Settings, router: Any) -> None:
            self.settings = settings

        async def start(self) -> None:
            broker.starts += 1
            if broker.start_error is not None:
                raise broker.start_error
            if not broker.topics_exist:
                raise PublishError(f"topic {self.settings.events_topic} does not exist", code=TOPIC_MISSING)

        async def publish(self, events: Sequence[Event], progress: Any = None) -> list[Receipt]:
            broker.published.extend(events)
            return [Receipt(event.event_id, ((0, offset),)) for offset, event in enumerate(events)]

        async def stop(self) -> None:
            pass

    async def ensure_topics(settings: Settings) -> None:
        broker.ensured += 1
        broker.topics_exist = True

    monkeypatch.setattr(publisher_module, "Publisher", StandInPublisher)
    monkeypatch.setattr(topics_module, "ensure_topics", ensure_topics)
    return broker


def test_publishing_to_existing_topics_makes_no_admin_request(broker: Broker, seed_events: tuple[Event, ...]) -> None:
    receipts = common.publish_events(Settings(), list(seed_events))

    assert broker.ensured == 0
    assert broker.starts == 1
    assert len(receipts) == len(seed_events) == len(broker.published)


def test_a_fresh_broker_gets_the_topics_then_the_records(broker: Broker, seed_events: tuple[Event, ...]) -> None:
    broker.topics_exist = False

    receipts = common.publish_events(Settings(), list(seed_events))

    assert broker.ensured == 1
    assert broker.starts == 2  # refused for the missing topic, then started on the created one
    assert all(isinstance(receipt, Receipt) for receipt in receipts)
    assert broker.published == list(seed_events)


def test_an_unreachable_broker_is_reported_and_no_topic_is_created(
    broker: Broker, seed_events: tuple[Event, ...]
) -> None:
    broker.start_error = PublishError("cannot reach Kafka at 127.0.0.1:1", code="KafkaConnectionError")

    with pytest.raises(PublishError, match="cannot reach Kafka"):
        common.publish_events(Settings(), list(seed_events))

    assert broker.ensured == 0
    assert broker.published == []
