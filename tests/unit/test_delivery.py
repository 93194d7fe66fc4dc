"""Webhook delivery: retries with capped backoff, Retry-After, dead letters, the ledger, and fan-out.

The notifier's ports are faked here, and only they: the HTTP sender, the
delivery ledger, the dead-letter sink, sleep, the clock and the random source.
Outcomes are read back as exported samples of a fresh Prometheus registry.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from tracker.core.alerts import Alert, Transition
from tracker.core.subscriptions import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, Subscription, verify, webhook_body
from tracker.core.transitions import Provenance, transition_document
from tracker.settings import Settings
from tracker.worker.delivery import Attempt, Notifier, RetryPolicy
from tracker.worker.metrics import PipelineMetrics
from tracker.worker.notifications import FEED_QUEUE_SIZE, Notifications

pytestmark = pytest.mark.unit

NOW = 1_767_225_600.0
SECRET = "0123456789abcdef-secret"
EXTERNAL_URL = "http://127.0.0.1:6066"
WAIT = 2.0  # seconds: every wait on the event loop is bounded


# --- fakes of the notifier's own ports ----------------------------------------------------------------------


@dataclass
class Request:
    """One POST the notifier made."""

    url: str
    body: bytes
    headers: dict[str, str]


@dataclass
class FakeSender:
    """The HttpSender port: answers each URL from a script (then 200) and records every request."""

    script: dict[str, list[Attempt]] = field(default_factory=dict)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    async def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        self.requests.append(Request(url, body, headers))
        gate = self.gates.get(url)
        if gate is not None:
            await gate.wait()
        replies = self.script.get(url)
        return replies.pop(0) if replies else Attempt(200)

    def to(self, url: str) -> list[Request]:
        """Return the requests made to ``url``."""
        return [request for request in self.requests if request.url == url]


@dataclass
class FakeLedger:
    """The delivery ledger port: marks of ``<subscription>|<idempotency key>``."""

    marks: set[str] = field(default_factory=set)
    writes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def delivered(self, mark: str) -> bool:
        return mark in self.marks

    async def mark_delivered(self, mark: str) -> None:
        if self.failures:
            raise RuntimeError(self.failures.pop(0))
        self.writes.append(mark)
        self.marks.add(mark)


@dataclass
class Harness:
    """A notifier with its fakes and the registry its outcomes are exported on."""

    notifier: Notifier
    subscriptions: list[Subscription]
    sender: FakeSender
    ledger: FakeLedger
    dead_letters: list[dict[str, Any]]
    delays: list[float]
    registry: CollectorRegistry

    def outcome(self, name: str) -> float:
        """Return the exported count of one delivery outcome (0 when never counted)."""
        value = self.registry.get_sample_value("tracker_notifications_total", {"outcome": name})
        return value or 0.0


class MaxJitter(random.Random):
    """A random source whose jitter is always the largest allowed: the backoff's upper envelope."""

    def uniform(self, a: float, b: float) -> float:
        return b


HarnessFactory = Callable[..., Harness]


@pytest.fixture
async def harness_factory() -> AsyncIterator[HarnessFactory]:
    """Build notifiers on fakes; their delivery tasks are cancelled when the test ends."""
    built: list[Notifier] = []

    def make(
        *subscriptions: Subscription,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> Harness:
        registry = CollectorRegistry()
        sender, ledger = FakeSender(), FakeLedger()
        dead_letters: list[dict[str, Any]] = []
        delays: list[float] = []
        subs = list(subscriptions)

        async def dead_letter(record: dict[str, Any]) -> None:
            dead_letters.append(record)

        async def sleep(seconds: float) -> None:
            delays.append(seconds)

        notifier = Notifier(
            subscriptions=lambda: subs,
            delivered=ledger.delivered,
            mark_delivered=ledger.mark_delivered,
            dead_letter=dead_letter,
            sender=sender,
            outcomes=PipelineMetrics.create(registry).notifications,
            external_url=EXTERNAL_URL,
            policy=policy or RetryPolicy(),
            sleep=sleep,
            clock=lambda: NOW,
            rng=rng or random.Random(0),
        )
        built.append(notifier)
        return Harness(notifier, subs, sender, ledger, dead_letters, delays, registry)

    yield make
    for notifier in built:
        await notifier.close()


# --- helpers -----------------------------------------------------------------------------------------------


def webhook(sub_id: str, *, max_attempts: int = 8, send_resolved: bool = True, matchers: str = "{}") -> Subscription:
    """Return a webhook subscription posting to ``https://<id>.example.org/hook``."""
    return Subscription.model_validate(
        {
            "id": sub_id,
            "owner": f"{sub_id}@example.org",
            "matchers": matchers,
            "send_resolved": send_resolved,
            "channel": {
                "type": "webhook",
                "url": url_of(sub_id),
                "secret": SECRET,
                "max_attempts": max_attempts,
            },
        }
    )


def sse(sub_id: str) -> Subscription:
    """Return a subscription that reads the live feed instead of receiving webhooks."""
    return Subscription.model_validate({"id": sub_id, "owner": "ops", "channel": {"type": "sse"}})


def url_of(sub_id: str) -> str:
    """Return the webhook URL of a subscription built by ``webhook``."""
    return f"https://{sub_id}.example.org/hook"


def transition(status: str = "firing", entity: str = "bytedance") -> dict[str, Any]:
    """Return the alerts-topic record of a peer-crossing transition."""
    alert = Alert(
        fingerprint=f"fp-{entity}",
        rule="peer-overtake-tokens",
        severity="warning",
        state="firing" if status == "firing" else "resolved",
        labels={"alertname": "peer-overtake-tokens", "severity": "warning", "entity": entity, "peer": "google"},
        annotations={"summary": f"{entity} overtook google"},
        since="2025-12",
        value=1.163,
        cause_ids=(f"{entity}-tokens-2025-12",),
        rule_version="d3841841327a",
    )
    provenance = [Provenance(f"{entity}-tokens-2025-12", "tracker.events", 0, 7)]
    document = transition_document(Transition(status, alert), provenance, NOW)  # type: ignore[arg-type]
    return json.loads(json.dumps(document))  # type: ignore[no-any-return]


def mark_of(sub_id: str, document: dict[str, Any]) -> str:
    """Return the ledger mark of one delivery."""
    return f"{sub_id}|{document['idempotency_key']}"


async def eventually(what: str, predicate: Callable[[], bool]) -> None:
    """Let the event loop run until ``predicate`` holds, failing after WAIT seconds."""

    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.001)

    try:
        await asyncio.wait_for(poll(), WAIT)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


def backoff_envelope(policy: RetryPolicy, attempt: int) -> float:
    """Return the longest backoff the policy allows before attempt ``attempt + 1``."""
    return float(min(policy.cap, policy.base * 2 ** (attempt - 1)))


# --- one delivery ------------------------------------------------------------------------------------------


async def test_a_delivery_is_one_signed_post_of_the_webhook_body(harness_factory: HarnessFactory) -> None:
    # Arrange
    sub = webhook("desk")
    h = harness_factory(sub)
    document = transition()

    # Act
    result = await h.notifier.deliver(sub, document)

    # Assert
    assert result == "delivered"
    (request,) = h.sender.requests
    assert request.url == url_of("desk")
    assert json.loads(request.body) == webhook_body("desk", document, EXTERNAL_URL)
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers[IDEMPOTENCY_HEADER] == document["idempotency_key"]
    assert verify(SECRET, request.body, request.headers[SIGNATURE_HEADER], now=NOW)
    assert h.ledger.writes == [mark_of("desk", document)]
    assert h.outcome("delivered") == 1
    assert h.delays == []


async def test_a_receiver_failing_three_times_then_accepting_gets_one_delivery(
    harness_factory: HarnessFactory,
) -> None:
    # Arrange
    sub = webhook("desk")
    h = harness_factory(sub)
    h.sender.script[url_of("desk")] = [Attempt(503), Attempt(503), Attempt(503), Attempt(200)]
    document = transition()

    # Act
    result = await h.notifier.deliver(sub, document)

    # Assert: four attempts, three retries, one delivery, one ledger mark.
    assert result == "delivered"
    assert len(h.sender.requests) == 4
    assert (h.outcome("delivered"), h.outcome("retried"), h.outcome("dead_lettered")) == (1, 3, 0)
    assert h.ledger.writes == [mark_of("desk", document)]
    assert h.dead_letters == []
    # Each wait is jittered under the policy's exponential envelope, itself capped.
    assert len(h.delays) == 3
    policy = RetryPolicy()
    envelope = [backoff_envelope(policy, attempt) for attempt in (1, 2, 3)]
    assert envelope == sorted(envelope)
    assert all(0 <= delay <= bound <= policy.cap for delay, bound in zip(h.delays, envelope, strict=True))
    # Every attempt carries the same body and idempotency key.
    assert len({request.body for request in h.sender.requests}) == 1
    assert {request.headers[IDEMPOTENCY_HEADER] for request in h.sender.requests} == {document["idempotency_key"]}


async def test_backoff_doubles_from_the_base_and_stops_growing_at_the_cap(harness_factory: HarnessFactory) -> None:
    # Arrange: the jitter always draws its maximum, so each delay is the envelope itself.
    sub = webhook("desk", max_attempts=7)
    h = harness_factory(sub, policy=RetryPolicy(base=1.0, cap=4.0), rng=MaxJitter())
    h.sender.script[url_of("desk")] = [Attempt(500)] * 6

    # Act
    result = await h.notifier.deliver(sub, transition())

    # Assert
    assert result == "delivered"
    assert h.delays == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


async def test_retry_after_is_honoured_when_longer_than_the_backoff(harness_factory: HarnessFactory) -> None:
    # Arrange
    sub = webhook("desk")
    h = harness_factory(sub)
    h.sender.script[url_of("desk")] = [Attempt(429, retry_after=7), Attempt(200)]

    # Act
    result = await h.notifier.deliver(sub, transition())

    # Assert
    assert result == "delivered"
    assert len(h.delays) == 1
    assert h.delays[0] >= 7
    assert h.delays[0] <= RetryPolicy().cap


async def test_retry_after_longer_than_the_cap_is_cut_to_the_cap(harness_factory: HarnessFactory) -> None:
    # Arrange
    sub = webhook("desk")
    h = harness_factory(sub, policy=RetryPolicy(base=0.5, cap=30.0))
    h.sender.script[url_of("desk")] = [Attempt(429, retry_after=3600), Attempt(200)]

    # Act
    await h.notifier.deliver(sub, transition())

    # Assert
    assert h.delays == [30.0]


@pytest.mark.parametrize("status", [400, 401, 404, 410])
async def test_a_client_error_is_dead_lettered_at_once_without_retrying(
    harness_factory: HarnessFactory, status: int
) -> None:
    # Arrange
    sub = webhook("desk")
    h = harness_factory(sub)
    h.sender.script[url_of("desk")] = [Attempt(status, error="refused")]
    document = transition()

    # Act
    result = await h.notifier.deliver(sub, document)

    # Assert
    assert result == "dead_lettered"
    assert len(h.sender.requests) == 1
    assert h.delays == []
    assert [(dead["last_status"], dead["last_error"]) for dead in h.dead_letters] == [(status, "refused")]
    assert (h.outcome("dead_lettered"), h.outcome("retried"), h.outcome("delivered")) == (1, 0, 0)
    assert h.ledger.writes == []


async def test_a_network_error_is_retried(harness_factory: HarnessFactory) -> None:
    # Arrange: no status at all, the connection failed.
    sub = webhook("desk")
    h = harness_factory(sub)
    h.sender.script[url_of("desk")] = [Attempt(None, error="connection refused"), Attempt(204)]

    # Act
    result = await h.notifier.deliver(sub, transition())

    # Assert
    assert result == "delivered"
    assert len(h.sender.requests) == 2
    assert len(h.delays) == 1
    assert (h.outcome("retried"), h.outcome("delivered")) == (1, 1)


async def test_exhausting_the_attempts_dead_letters_with_the_last_status(harness_factory: HarnessFactory) -> None:
    # Arrange
    sub = webhook("desk", max_attempts=3)
    h = harness_factory(sub)
    h.sender.script[url_of("desk")] = [Attempt(503), Attempt(502), Attempt(504, error="gateway timeout")]
    document = transition()

    # Act
    result = await h.notifier.deliver(sub, document)

    # Assert: three attempts and two waits between them; nothing marked delivered.
    assert result == "dead_lettered"
    assert len(h.sender.requests) == 3
    assert len(h.delays) == 2
    assert h.dead_letters == [
        {
            "subscription": "desk",
            "idempotency_key": document["idempotency_key"],
            "url": "https://desk.example.org/<redacted>",  # the DLQ never holds a URL's path
            "last_status": 504,
            "last_error": "gateway timeout",
            "transition": document,
        }
    ]
    assert h.outcome("dead_lettered") == 1
    assert h.ledger.writes == []


async def test_the_retried_outcome_counts_only_retries_that_were_made(harness_factory: HarnessFactory) -> None:
    # Arrange: a single attempt allowed, so a failure can never be retried.
    sub = webhook("desk", max_attempts=1)
    h = harness_factory(sub)
    h.sender.script[url_of("desk")] = [Attempt(503)]

    # Act
    result = await h.notifier.deliver(sub, transition())

    # Assert
    assert result == "dead_lettered"
    assert len(h.sender.requests) == 1
    assert h.outcome("retried") == len(h.delays) == 0


async def test_an_already_delivered_transition_is_skipped_without_any_request(
    harness_factory: HarnessFactory,
) -> None:
    # Arrange: the ledger already holds this delivery's mark.
    sub = webhook("desk")
    h = harness_factory(sub)
    document = transition()
    h.ledger.marks.add(mark_of("desk", document))

    # Act
    result = await h.notifier.deliver(sub, document)

    # Assert
    assert result == "duplicate_skipped"
    assert h.sender.requests == []
    assert h.ledger.writes == []
    assert h.outcome("duplicate_skipped") == 1


async def test_redelivering_a_transition_reaches_the_receiver_once(harness_factory: HarnessFactory) -> None:
    # Arrange
    sub = webhook("desk")
    h = harness_factory(sub)
    document = transition()

    # Act: the same record read twice (a crash before the ack, a replay).
    results = [await h.notifier.deliver(sub, document), await h.notifier.deliver(sub, document)]

    # Assert
    assert results == ["delivered", "duplicate_skipped"]
    assert len(h.sender.requests) == 1


async def test_the_ledger_mark_is_per_subscription(harness_factory: HarnessFactory) -> None:
    # Arrange: one subscriber already has this transition, the other has not.
    first, second = webhook("first"), webhook("second")
    h = harness_factory(first, second)
    document = transition()
    h.ledger.marks.add(mark_of("first", document))

    # Act
    results = [await h.notifier.deliver(first, document), await h.notifier.deliver(second, document)]

    # Assert
    assert results == ["duplicate_skipped", "delivered"]
    assert [request.url for request in h.sender.requests] == [url_of("second")]


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0.01, 10),
    st.floats(0.01, 120),
    st.integers(1, 60),
    st.none() | st.floats(0, 10_000),
    st.integers(0, 2**32),
)
def test_a_retry_delay_is_jittered_under_the_envelope_at_least_retry_after_and_never_above_the_cap(
    base: float, cap: float, attempt: int, retry_after: float | None, seed: int
) -> None:
    # Arrange
    policy = RetryPolicy(base=base, cap=cap)

    # Act
    delay = policy.delay(attempt, retry_after, random.Random(seed))

    # Assert
    assert 0 <= delay <= cap
    assert delay >= min(cap, retry_after or 0.0)
    assert delay <= max(backoff_envelope(policy, attempt), min(cap, retry_after or 0.0))


# --- fan-out -----------------------------------------------------------------------------------------------


async def test_a_slow_subscriber_does_not_delay_another_subscriber(harness_factory: HarnessFactory) -> None:
    # Arrange: the slow receiver holds its request open until released.
    h = harness_factory(webhook("slow"), webhook("fast"))
    release = h.sender.gates[url_of("slow")] = asyncio.Event()
    document = transition()
    acks: list[str] = []

    # Act
    h.notifier.dispatch(document, lambda: acks.append("ack"))
    await eventually("the fast delivery", lambda: mark_of("fast", document) in h.ledger.marks)

    # Assert: fast is delivered while slow is still blocked, so the record is not yet acknowledged.
    assert len(h.sender.to(url_of("slow"))) == 1
    assert mark_of("slow", document) not in h.ledger.marks
    assert acks == []

    # Act: the slow receiver answers.
    release.set()
    await eventually("the acknowledgement", lambda: acks == ["ack"])

    # Assert
    assert h.ledger.marks == {mark_of("slow", document), mark_of("fast", document)}
    assert h.outcome("delivered") == 2


async def test_a_transition_is_acknowledged_once_when_every_delivery_is_done_even_a_dead_letter(
    harness_factory: HarnessFactory,
) -> None:
    # Arrange: one receiver accepts, one refuses for good, one fails once then accepts.
    h = harness_factory(webhook("ok"), webhook("refuses"), webhook("flaky"))
    h.sender.script[url_of("refuses")] = [Attempt(400)]
    h.sender.script[url_of("flaky")] = [Attempt(503)]
    acks: list[str] = []

    # Act
    h.notifier.dispatch(transition(), lambda: acks.append("ack"))
    await eventually("every delivery", lambda: len(h.sender.requests) == 4 and len(h.dead_letters) == 1)
    await eventually("the acknowledgement", lambda: bool(acks))
    await asyncio.sleep(0.01)

    # Assert
    assert acks == ["ack"]
    assert (h.outcome("delivered"), h.outcome("dead_lettered")) == (2, 1)


async def test_resolved_transitions_skip_subscriptions_that_do_not_want_them(
    harness_factory: HarnessFactory,
) -> None:
    # Arrange
    h = harness_factory(webhook("wants-all"), webhook("firing-only", send_resolved=False))
    acks: list[str] = []

    # Act
    h.notifier.dispatch(transition("resolved"), lambda: acks.append("ack"))
    await eventually("the acknowledgement", lambda: bool(acks))

    # Assert
    assert [request.url for request in h.sender.requests] == [url_of("wants-all")]
    assert json.loads(h.sender.requests[0].body)["status"] == "resolved"
    assert acks == ["ack"]


async def test_firing_transitions_still_reach_subscriptions_that_do_not_want_resolutions(
    harness_factory: HarnessFactory,
) -> None:
    # Arrange
    h = harness_factory(webhook("firing-only", send_resolved=False))
    acks: list[str] = []

    # Act
    h.notifier.dispatch(transition("firing"), lambda: acks.append("ack"))
    await eventually("the acknowledgement", lambda: bool(acks))

    # Assert
    assert [request.url for request in h.sender.requests] == [url_of("firing-only")]


async def test_sse_subscriptions_are_not_sent_webhooks(harness_factory: HarnessFactory) -> None:
    # Arrange
    h = harness_factory(sse("dashboard"))
    acks: list[str] = []

    # Act
    h.notifier.dispatch(transition(), lambda: acks.append("ack"))

    # Assert: nothing to deliver, so the record is acknowledged at once.
    assert acks == ["ack"]
    await asyncio.sleep(0.01)
    assert h.sender.requests == []


async def test_only_matching_webhook_subscriptions_receive_a_transition(harness_factory: HarnessFactory) -> None:
    # Arrange
    h = harness_factory(
        webhook("bytedance-desk", matchers='{entity="bytedance"}'),
        webhook("google-desk", matchers='{entity="google"}'),
        sse("dashboard"),
    )
    acks: list[str] = []

    # Act
    h.notifier.dispatch(transition(entity="bytedance"), lambda: acks.append("ack"))
    await eventually("the acknowledgement", lambda: bool(acks))

    # Assert
    assert [request.url for request in h.sender.requests] == [url_of("bytedance-desk")]


async def test_with_no_subscription_wanting_it_a_transition_is_acknowledged_at_once(
    harness_factory: HarnessFactory,
) -> None:
    # Arrange
    h = harness_factory(webhook("google-desk", matchers='{entity="google"}'))
    acks: list[str] = []

    # Act
    h.notifier.dispatch(transition(entity="bytedance"), lambda: acks.append("ack"))

    # Assert
    assert acks == ["ack"]


async def test_one_subscriber_receives_its_transitions_in_dispatch_order(harness_factory: HarnessFactory) -> None:
    # Arrange
    h = harness_factory(webhook("desk"))
    documents = [transition("firing", "bytedance"), transition("firing", "doubao"), transition("resolved", "doubao")]
    acks: list[int] = []

    # Act
    for number, document in enumerate(documents):
        h.notifier.dispatch(document, lambda number=number: acks.append(number))  # type: ignore[misc]
    await eventually("three acknowledgements", lambda: len(acks) == 3)

    # Assert
    sent = [request.headers[IDEMPOTENCY_HEADER] for request in h.sender.requests]
    assert sent == [document["idempotency_key"] for document in documents]
    assert acks == [0, 1, 2]


async def test_a_subscription_deleted_before_delivery_gets_nothing_and_the_record_is_still_acknowledged(
    harness_factory: HarnessFactory,
) -> None:
    # Arrange
    h = harness_factory(webhook("leaving"))
    acks: list[str] = []

    # Act: the subscription is deleted before its delivery task runs.
    h.notifier.dispatch(transition(), lambda: acks.append("ack"))
    h.subscriptions.clear()
    await eventually("the acknowledgement", lambda: bool(acks))

    # Assert
    assert h.sender.requests == []
    assert acks == ["ack"]


async def test_closing_the_notifier_mid_delivery_leaves_the_transition_unacknowledged(
    harness_factory: HarnessFactory,
) -> None:
    # Arrange: a delivery is in flight (the receiver has not answered) when the worker shuts down.
    h = harness_factory(webhook("slow"))
    h.sender.gates[url_of("slow")] = asyncio.Event()
    acks: list[str] = []
    h.notifier.dispatch(transition(), lambda: acks.append("ack"))
    await eventually("the request in flight", lambda: len(h.sender.requests) == 1)

    # Act
    await h.notifier.close()

    # Assert: not delivered, so the record must stay unacknowledged and be read again after a restart.
    assert h.ledger.writes == []
    assert acks == []


async def test_a_failing_ledger_write_does_not_stop_later_deliveries_to_that_subscriber(
    harness_factory: HarnessFactory,
) -> None:
    # Arrange: the ledger (a Kafka topic) refuses the first mark, then recovers.
    h = harness_factory(webhook("desk"))
    h.ledger.failures.append("ledger unavailable")
    first, second = transition("firing", "bytedance"), transition("firing", "doubao")
    acks: list[str] = []

    # Act
    h.notifier.dispatch(first, lambda: acks.append("first"))
    await eventually("the first attempt", lambda: len(h.sender.requests) == 1 and not h.ledger.failures)
    h.notifier.dispatch(second, lambda: acks.append("second"))
    await eventually("the second delivery", lambda: mark_of("desk", second) in h.ledger.marks)

    # Assert
    assert "second" in acks


# --- live feeds (GET /v1/alerts/stream) -------------------------------------------------------


async def test_ending_the_feeds_ends_open_streams_and_sends_later_ones_away(tmp_path) -> None:
    async def dead_letter(record: dict[str, Any]) -> None:
        raise AssertionError(f"nothing is delivered here: {record}")

    notifications = Notifications(
        Settings(data_dir=tmp_path), PipelineMetrics.create(CollectorRegistry()).notifications, dead_letter
    )
    full = notifications.open_feed(())
    for count in range(FEED_QUEUE_SIZE):
        full.put_nowait({"seq": count})  # a client that stopped reading
    idle = notifications.open_feed(())

    notifications.end_feeds()
    late = notifications.open_feed(())

    assert idle.get_nowait() is None
    assert late.get_nowait() is None
    drained = [full.get_nowait() for _ in range(full.qsize())]
    assert drained[-1] is None
    assert len(drained) == FEED_QUEUE_SIZE
