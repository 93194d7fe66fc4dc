"""Fault 4: a webhook subscriber is down for a while, then returns.

While the receiver (a real HTTP server on 127.0.0.1) is down, alerts keep
changing: the seed's crossing resolves, fires again and resolves again, new
export-rule alerts fire, and a synthetic workload folds in the background.
Once the receiver is back, every transition on the alerts topic must arrive
exactly once per idempotency key (the receiver also counts raw arrivals),
in the order of the topic for each alert, and the fold must never have
waited for the receiver.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from typing import Any

import pytest

from tests.conftest import SEED, run_cli
from tests.integration.fault_helpers import record_figures
from tests.integration.helpers import sample, scrape
from tests.integration.kafka_helpers import read_topic
from tests.integration.receivers import Receiver
from tracker.bench.workload import generate
from tracker.core.decode import decode_event
from tracker.errors import EventValidationError
from tracker.polling import wait_until
from tracker.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SECRET = "subscriber-outage-secret"
EVENT_9 = "seed-09-bytedance-tokens-2025-12"
OUTAGE_SECONDS = 20
BACKGROUND_EVENTS = 2_000
# Retries back off up to 30 s (full jitter): delivery after the return is bounded by that plus the queue.
DELIVERY_TIMEOUT = 90
QUIET_SECONDS = 5
EXPORT_PRODUCTS = ("nvidia_b200", "amd_mi350", "huawei_910c", "nvidia_h20", "nvidia_gb200")


def publish(settings: Settings, *events: dict[str, Any], raw: bytes | None = None) -> None:
    """Publish events (or raw JSON Lines) with the CLI; every record must be acknowledged."""
    body = raw if raw is not None else "\n".join(json.dumps(event) for event in events).encode()
    result = run_cli(settings, "publish", "-", stdin=body)
    assert result.returncode == 0, result.stderr[-2000:]


def retraction(target: str, event_id: str) -> dict[str, Any]:
    return {
        "type": "event.retracted",
        "id": event_id,
        "target_id": target,
        "reason": "figure misread",
        "occurred_on": "2025-12",
        "source": {"name": "desk"},
    }


def seed_event(event_id: str) -> dict[str, Any]:
    for line in SEED.read_text().splitlines():
        event = json.loads(line)
        if event["id"] == event_id:
            return dict(event)
    raise AssertionError(f"{event_id} is not in {SEED}")


def export_change(product: str) -> dict[str, Any]:
    return {
        "type": "export_rule.changed",
        "id": f"outage-export-{product}",
        "authority": "us_bis",
        "product": product,
        "destination": "CN",
        "direction": "tightened",
        "occurred_on": "2025-11",
        "source": {"name": "desk"},
    }


def counter(url: str, name: str, **labels: str) -> float:
    return scrape(url).get(sample(name, **labels), 0.0)


def events_folded(url: str) -> float:
    return sum(value for (name, _), value in scrape(url).items() if name == "tracker_events_total")


def transitions(url: str) -> float:
    return sum(value for (name, _), value in scrape(url).items() if name == "tracker_alert_transitions_total")


def background_records(seed: int) -> bytes:
    lines = []
    for raw in generate(BACKGROUND_EVENTS, 300, seed).records:
        try:
            decode_event(raw)
        except EventValidationError:
            continue
        lines.append(raw.replace(b'"bench-', b'"outage-bench-'))
    return b"\n".join(lines) + b"\n"


def test_a_subscriber_that_was_down_gets_every_due_notification_once_and_in_order(settings_factory, worker_factory):
    seed = random.randrange(1_000_000)
    settings = settings_factory()
    worker = worker_factory(settings)
    wait_until("the worker's notifications", lambda: worker.health()["notifications_ready"], timeout=60)
    receiver = Receiver().start()
    try:
        result = run_cli(
            settings,
            "subscribe",
            "--owner",
            "outage",
            "--webhook",
            f"{receiver.url}/hook",
            "--secret",
            SECRET,
            "--max-attempts",
            "50",
        )
        assert result.returncode == 0, result.stderr
        publish(settings, raw=SEED.read_bytes())
        receiver.wait_for(3, timeout=60, succeeded=True)

        # The receiver goes away; alerts keep changing and the fold keeps going.
        receiver.stop()
        down_at = time.monotonic()
        folded_at_start = events_folded(worker.url)
        steps: list[tuple[str, list[dict[str, Any]]]] = [
            ("the crossing resolves", [retraction(EVENT_9, "outage-r1")]),
            ("it fires again", [{**seed_event(EVENT_9), "id": f"{EVENT_9}-again"}]),
            ("it resolves again", [retraction(f"{EVENT_9}-again", "outage-r2")]),
            ("export alerts fire", [export_change(product) for product in EXPORT_PRODUCTS]),
        ]
        folded_during: list[float] = []
        for _, events in steps:
            before = transitions(worker.url)
            publish(settings, *events)
            # One step at a time: each must be evaluated on its own, or two would cancel out in a batch.
            wait_until("the step's transitions", lambda b=before: transitions(worker.url) > b, 30)
            folded_during.append(events_folded(worker.url))
        publish(settings, raw=background_records(seed))
        wait_until("the background events to fold", lambda: events_folded(worker.url) > folded_during[-1] + 1000, 60)
        folded_during.append(events_folded(worker.url))
        delivered_while_down = counter(worker.url, "tracker_notifications_total", outcome="delivered")
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        folded_at_end = events_folded(worker.url)
        arrivals_while_down = len(receiver.requests)

        # It returns, and answers the first two attempts with 503 for good measure.
        receiver.fail_next(2, status=503)
        receiver.start()
        up_at = time.monotonic()
        due = [json.loads(record.value) for record in read_topic(settings, settings.alerts_topic, at_least=3)]
        due_keys = {transition["idempotency_key"] for transition in due}

        def all_delivered() -> bool:
            return {request.header("Idempotency-Key") for request in receiver.succeeded()} >= due_keys

        wait_until("every due notification delivered", all_delivered, DELIVERY_TIMEOUT, 0.2)
        delivered_after = time.monotonic() - up_at
        time.sleep(QUIET_SECONDS)
        # Anything that fired while we waited is due too: read the topic again.
        due = [json.loads(record.value) for record in read_topic(settings, settings.alerts_topic, at_least=len(due))]
        requests = receiver.requests
    finally:
        receiver.stop()

    succeeded = [request for request in requests if request.succeeded]
    per_key = Counter(request.header("Idempotency-Key") for request in succeeded)
    duplicates = {key: count for key, count in per_key.items() if count > 1}
    # A transition may be on the topic twice (sent again after a crash): same key, one delivery.
    topic_order: dict[str, list[str]] = defaultdict(list)
    for transition in due:
        if transition["idempotency_key"] not in topic_order[transition["alert"]["fingerprint"]]:
            topic_order[transition["alert"]["fingerprint"]].append(transition["idempotency_key"])
    arrival_order: dict[str, list[str]] = defaultdict(list)
    for request in succeeded:
        fingerprint = request.json()["alerts"][0]["fingerprint"]
        if request.header("Idempotency-Key") not in arrival_order[fingerprint]:
            arrival_order[fingerprint].append(str(request.header("Idempotency-Key")))
    out_of_order = {fp: (keys, arrival_order[fp]) for fp, keys in topic_order.items() if arrival_order[fp] != keys}
    crossing = {t["idempotency_key"]: t["status"] for t in due if t["alert"]["rule"] == "peer-overtake-tokens"}
    record_figures(
        "subscriber_outage",
        {
            "seed": seed,
            "injected": 1,
            "outage_seconds": round(up_at - down_at, 1),
            "notifications_due": len({t["idempotency_key"] for t in due}),
            "notifications_due_during_outage": len({t["idempotency_key"] for t in due}) - 3,
            "raw_arrivals": len(requests),
            "arrivals_answered_2xx": len(succeeded),
            "arrivals_refused_503_after_return": sum(1 for r in requests if r.status == 503),
            "duplicates_per_idempotency_key": sum(count - 1 for count in duplicates.values()),
            "lost": len({t["idempotency_key"] for t in due} - set(per_key)),
            "alerts_out_of_order": len(out_of_order),
            "retries_counted": counter(worker.url, "tracker_notifications_total", outcome="retried"),
            "return_to_all_delivered_seconds": round(delivered_after, 1),
            "events_folded_during_outage": folded_at_end - folded_at_start,
        },
    )

    # The fold never waited for the receiver.
    assert arrivals_while_down == 3, "the receiver's port was closed: nothing can have arrived meanwhile"
    assert delivered_while_down == 3
    assert folded_at_start < folded_during[0] < folded_during[-1] <= folded_at_end
    assert folded_at_end - folded_at_start > BACKGROUND_EVENTS / 2
    # The crossing went firing -> resolved -> firing -> resolved: four transitions, four keys.
    assert list(crossing.values()) == ["firing", "resolved", "firing", "resolved"], crossing
    # Every due notification arrived, exactly once per key, in the topic's order for each alert.
    assert set(per_key) == {t["idempotency_key"] for t in due}
    assert not duplicates, duplicates
    assert not out_of_order, list(out_of_order.items())[:3]
