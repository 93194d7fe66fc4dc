"""Publisher.publish on a stand-in producer: input order, a bounded window, and failing fast."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, OutOfOrderSequenceNumber
from hypothesis import given
from hypothesis import strategies as st

from tracker.core.decode import decode_event
from tracker.core.events import Event
from tracker.core.routing import Router
from tracker.errors import PublishError
from tracker.kafka import publisher as publisher_module
from tracker.kafka.publisher import Publisher, Receipt, encode_event
from tracker.settings import Settings

pytestmark = pytest.mark.unit

ACK = "ack"
HANG = "hang"  # never acknowledged: the broker went away
FULL = "full"  # no room in the producer's buffer: send itself waits


class Metadata:
    def __init__(self, partition: int, offset: int) -> None:
        self.partition = partition
        self.offset = offset


class StandInProducer:
    """Answers the n-th record as ``outcome(n)`` says: ACK, HANG, or an exception to raise."""

    def __init__(self, outcome: Callable[[int], str | Exception] = lambda n: ACK) -> None:
        self.outcome = outcome
        self.sent = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        number, self.sent = self.sent, self.sent + 1
        outcome = self.outcome(number)
        if isinstance(outcome, KafkaConnectionError):
            raise outcome  # refused before it is even queued
        if outcome == FULL:
            await asyncio.sleep(3600)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        elif outcome == ACK:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

            def acknowledge() -> None:
                self.in_flight -= 1
                future.set_result(Metadata(0, number))

            asyncio.get_running_loop().call_soon(acknowledge)
        return future


def handing_over(*producers: StandInProducer) -> Any:
    """Return a ``connect`` for the publisher that hands over ``producers`` one per connection."""
    queue = list(producers)

    async def connect(settings: Settings) -> StandInProducer:
        return queue.pop(0)

    return connect


def publish(producer: StandInProducer, router: Router, events: list[Event]) -> list[Receipt | PublishError]:
    async def run() -> list[Receipt | PublishError]:
        publisher = Publisher(Settings(), router, connect=handing_over(producer))
        await publisher.start()
        return await publisher.publish(events)

    return asyncio.run(run())


@pytest.fixture
def events(event_factory: Callable[..., Event]) -> list[Event]:
    return [event_factory("usage.reported", value={"value": n + 1, "unit": "tokens"}) for n in range(200)]


def test_receipts_come_back_in_input_order_with_a_bounded_window(
    events: list[Event], router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publisher_module, "IN_FLIGHT", 8)
    producer = StandInProducer()

    receipts = publish(producer, router, events)

    assert [receipt.event_id for receipt in receipts] == [event.event_id for event in events]
    assert [receipt.offset for receipt in receipts if isinstance(receipt, Receipt)] == list(range(len(events)))
    assert 1 < producer.most_in_flight <= 8


def test_an_unreachable_broker_fails_every_record_within_about_one_deadline(
    events: list[Event], router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publisher_module, "ACK_DEADLINE_SECONDS", 0.2)
    monkeypatch.setattr(publisher_module, "IN_FLIGHT", 10)
    producer = StandInProducer(lambda n: ACK if n < 5 else HANG)

    started = time.monotonic()
    receipts = publish(producer, router, events)
    elapsed = time.monotonic() - started

    assert elapsed < 1.5, elapsed  # one deadline for the window in flight, not one per record
    assert all(isinstance(receipt, Receipt) for receipt in receipts[:5])
    failed = receipts[5:]
    assert all(isinstance(error, PublishError) for error in failed)
    assert {error.code for error in failed if isinstance(error, PublishError)} == {"Timeout", "NotSent"}
    assert producer.sent <= 5 + 10  # after the first timeout, nothing more was handed to the producer
    assert all(str(error).startswith(event.event_id) for event, error in zip(events[5:], failed, strict=True))


def test_waiting_for_room_in_the_producer_buffer_counts_against_the_deadline(
    events: list[Event], router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publisher_module, "ACK_DEADLINE_SECONDS", 0.2)
    producer = StandInProducer(lambda n: ACK if n < 3 else FULL)

    started = time.monotonic()
    receipts = publish(producer, router, events)
    elapsed = time.monotonic() - started

    assert elapsed < 1.5, elapsed
    assert all(isinstance(receipt, Receipt) for receipt in receipts[:3])
    assert [getattr(receipt, "code", None) for receipt in receipts[3:5]] == ["Timeout", "NotSent"]
    assert len(receipts) == len(events) and producer.sent == 4


def test_a_record_the_broker_refuses_does_not_stop_the_others(events: list[Event], router: Router) -> None:
    producer = StandInProducer(lambda n: MessageSizeTooLargeError() if n == 1 else ACK)

    receipts = publish(producer, router, events[:3])

    assert isinstance(receipts[0], Receipt) and isinstance(receipts[2], Receipt)
    assert isinstance(receipts[1], PublishError) and receipts[1].code == "MessageSizeTooLargeError"


def test_a_retriable_kafka_error_stops_the_records_not_yet_sent(
    events: list[Event], router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = StandInProducer(lambda n: KafkaConnectionError("no route to the broker"))

    receipts = publish(producer, router, events[:3])

    assert [getattr(receipt, "code", None) for receipt in receipts] == ["Unreachable", "NotSent", "NotSent"]
    assert producer.sent == 1  # the rest of the window was never handed to the producer


def test_a_producer_out_of_step_with_the_broker_is_replaced_before_the_next_publish(
    events: list[Event], router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = StandInProducer(lambda n: OutOfOrderSequenceNumber())
    broken.stop = lambda: asyncio.sleep(0)  # type: ignore[attr-defined]
    replacement = StandInProducer()
    publisher = Publisher(Settings(), router, connect=handing_over(broken, replacement))

    async def twice() -> tuple[list[Receipt | PublishError], list[Receipt | PublishError]]:
        await publisher.start()
        return await publisher.publish(events[:2]), await publisher.publish(events[2:4])

    first, second = asyncio.run(twice())

    assert [getattr(receipt, "code", None) for receipt in first] == ["OutOfOrderSequenceNumber"] * 2
    assert all(isinstance(receipt, Receipt) for receipt in second)
    assert replacement.sent == 2


# --- the record value -----------------------------------------------------------------------

amounts = st.floats(min_value=0, max_value=4e17) | st.floats(min_value=0, max_value=1e-3) | st.integers(0, 4 * 10**17)
texts = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)


@given(
    value=amounts,
    low=amounts,
    name=texts,
    quote=st.none() | texts,
    given_id=st.none() | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True),
)
def test_the_record_value_is_compact_json_with_the_id_first_and_no_nulls(
    value: float, low: float, name: str, quote: str | None, given_id: str | None, event_factory: Callable[..., Event]
) -> None:
    usage = event_factory("usage.reported", id=given_id, value={"value": value, "unit": "tokens"})
    chips = event_factory(
        "chip_delivery.reported",
        id=given_id,
        source={"name": name, "quote": quote},
        units={"low": low, "high": low + value, "unit": "units"},
    )

    for event in (usage, chips):
        written = encode_event(event)
        expected = {"id": event.event_id, **event.model_dump(mode="json", exclude_none=True)}
        assert json.loads(written) == expected
        assert next(iter(json.loads(written))) == "id"
        assert decode_event(written) == event.model_copy(update={"id": event.event_id})


def test_no_window_goes_to_a_producer_out_of_step_with_the_broker(
    events: list[Event], router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publisher_module, "IN_FLIGHT", 2)
    producer = StandInProducer(lambda n: OutOfOrderSequenceNumber())

    receipts = publish(producer, router, events[:6])

    codes = [getattr(receipt, "code", None) for receipt in receipts]
    assert codes == ["OutOfOrderSequenceNumber"] * 2 + ["NotSent"] * 4
    assert producer.sent == 2


def test_publishing_on_a_stopped_publisher_is_a_publish_error(events: list[Event], router: Router) -> None:
    publisher = Publisher(Settings(), router)

    with pytest.raises(PublishError, match="stopped"):
        asyncio.run(publisher.publish(events[:2]))
