"""Alert notifications on a real broker, as a subscriber sees them.

A subscriber registers a webhook with ``tracker subscribe``; the seed article
fires the BRIEF's three alerts, and the receiver (a real HTTP server on
127.0.0.1) gets one signed Alertmanager-v4 POST per transition. Retractions
resolve, failures are retried, a crash between a transition and its delivery
loses nothing, and replaying the log (restart or a brand-new consumer group)
sends nothing twice. The same transitions stream as Server-Sent Events.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import queue
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import SEED, run_cli
from tests.integration.helpers import post, sample, scrape, wait_for_sample
from tests.integration.kafka_helpers import read_topic
from tests.integration.receivers import Received, Receiver
from tracker.core.subscriptions import verify
from tracker.errors import TrackerError
from tracker.polling import http_json, wait_until
from tracker.settings import Settings

pytestmark = pytest.mark.integration

SECRET = "correct-horse-battery-staple"
# ../shared/BRIEF.md, "Alerts": the default rules fire exactly these on the seed.
EXPECTED_RULES = {
    "export-rule-change-china": "critical",
    "peer-overtake-tokens": "warning",
    "usage-growth-stalled": "warning",
}
ONE_EACH = Counter(list(EXPECTED_RULES))
ZERO_TIME = "0001-01-01T00:00:00Z"
EVENT_9 = "seed-09-bytedance-tokens-2025-12"
DELIVERY_TIMEOUT = 60
# How long "nothing more arrives" is watched for after the expected requests.
QUIET_SECONDS = 4


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    """Make webhook receivers (started unless ``up=False``); each is closed when the test ends."""
    made: list[Receiver] = []

    def make(up: bool = True) -> Receiver:
        receiver = Receiver()
        made.append(receiver)
        return receiver.start() if up else receiver

    yield make
    for receiver in made:
        receiver.stop()


def subscribe(settings: Settings, receiver: Receiver, *options: str) -> str:
    """Subscribe ``receiver`` with the CLI; return the printed subscription id."""
    result = run_cli(
        settings, "subscribe", "--owner", "t", "--webhook", f"{receiver.url}/hook", "--secret", SECRET, *options
    )
    assert result.returncode == 0, result.stderr
    subscription_id = result.stdout.strip()
    assert re.fullmatch(r"sub-[0-9a-f]{12}", subscription_id), result.stdout
    return subscription_id


def publish(settings: Settings, *events: dict[str, Any]) -> None:
    """Publish the seed file (no ``events``) or the given events with the CLI."""
    if events:
        body = "\n".join(json.dumps(event) for event in events).encode()
        result = run_cli(settings, "publish", "-", stdin=body)
    else:
        result = run_cli(settings, "publish", str(SEED))
    assert result.returncode == 0, result.stderr
    assert f"published {len(events) or 10}, rejected 0, failed 0" in result.stdout


def retraction_of(event_id: str) -> dict[str, Any]:
    return {
        "type": "event.retracted",
        "target_id": event_id,
        "reason": "figure misread",
        "occurred_on": "2025-12",
        "source": {"name": "desk"},
    }


def event_9_again() -> dict[str, Any]:
    event = json.loads(SEED.read_text().splitlines()[8])
    assert event["id"] == EVENT_9
    return {**event, "id": f"{EVENT_9}-again"}


def stays_quiet(receiver: Receiver, count: int) -> None:
    """Watch the receiver for a while and assert it still holds ``count`` requests."""
    time.sleep(QUIET_SECONDS)
    got = receiver.requests
    assert len(got) == count, [(r.status, r.json()["status"], rule_of(r)) for r in got[count:]]


def rule_of(request: Received) -> str:
    return str(request.json()["alerts"][0]["labels"]["alertname"])


def check_notification(request: Received, subscription_id: str, status: str) -> dict[str, Any]:
    """Assert what every receiver may rely on: signature, idempotency key, Alertmanager v4; return the body."""
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.header("Content-Type") == "application/json"
    signature = request.header("X-Tracker-Signature")
    assert signature is not None
    assert verify(SECRET, request.body, signature, now=time.time())
    assert not verify("not-the-secret-at-all", request.body, signature, now=time.time())
    body = request.json()
    assert request.header("Idempotency-Key") == body["tracker"]["idempotency_key"]
    assert body["version"] == "4"
    assert body["status"] == status
    assert body["receiver"] == subscription_id
    (alert,) = body["alerts"]
    assert alert["status"] == status
    rule = alert["labels"]["alertname"]
    assert alert["labels"]["severity"] == EXPECTED_RULES[rule]
    assert body["groupLabels"] == {"alertname": rule}
    if status == "firing":
        assert alert["endsAt"] == ZERO_TIME
    return dict(body)


def notification_rules(requests: list[Received]) -> Counter[str]:
    return Counter(rule_of(request) for request in requests)


def firing_rules(url: str) -> set[str]:
    """Return the rules with a market_alert_firing sample on a worker's /metrics."""
    return {dict(labels)["alertname"] for (name, labels) in scrape(url) if name == "market_alert_firing"}


def alerts_of(url: str) -> list[dict[str, Any]]:
    return list(http_json(f"{url}/v1/alerts")["alerts"])


def alert_states(url: str) -> set[tuple[str, str, str, str, tuple[str, ...]]]:
    return {
        (alert["fingerprint"], alert["rule"], alert["state"], alert["since"], tuple(alert["cause_ids"]))
        for alert in alerts_of(url)
    }


def outcome(url: str, name: str) -> float:
    """Return tracker_notifications_total{outcome=name} (0 when the label was never counted)."""
    return scrape(url).get(sample("tracker_notifications_total", outcome=name), 0.0)


def wait_for_transitions(url: str) -> None:
    """Wait until a worker's /metrics shows a firing transition of each expected rule."""
    for rule in EXPECTED_RULES:
        wait_for_sample(url, sample("tracker_alert_transitions_total", alertname=rule, state="firing"), timeout=60)


def call(method: str, url: str, body: object | None = None) -> tuple[int, dict[str, Any]]:
    """Send a JSON request and return (status, decoded JSON), error statuses included."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_webhook_subscriber_gets_one_signed_notification_per_seed_alert(
    settings_factory, start_worker, receiver_factory
):
    settings = settings_factory()
    worker = start_worker(settings)
    receiver = receiver_factory()

    subscription_id = subscribe(settings, receiver)
    listing = run_cli(settings, "subscriptions")

    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.split() == ["id", "owner", "matchers", "channel", "target", "resolved", "repeat"]
    assert row.split() == [subscription_id, "t", "{}", "webhook", f"{receiver.url}/hook", "yes"]
    assert SECRET not in listing.stdout + listing.stderr

    publish(settings)

    requests = receiver.wait_for(3, timeout=DELIVERY_TIMEOUT)
    stays_quiet(receiver, 3)
    bodies = [check_notification(request, subscription_id, "firing") for request in requests]
    assert notification_rules(requests) == ONE_EACH
    assert len({request.header("Idempotency-Key") for request in requests}) == 3
    delivered = wait_for_sample(
        worker.url, sample("tracker_notifications_total", outcome="delivered"), lambda v: v >= 3
    )
    assert delivered == 3
    assert firing_rules(worker.url) == set(EXPECTED_RULES)

    alerts = alerts_of(worker.url)
    assert {alert["rule"]: alert["state"] for alert in alerts} == dict.fromkeys(EXPECTED_RULES, "firing")
    assert len(alerts) == 3
    assert {alert["fingerprint"] for alert in alerts} == {body["alerts"][0]["fingerprint"] for body in bodies}
    seed_ids = {json.loads(line)["id"] for line in SEED.read_text().splitlines()}
    for alert in alerts:
        assert alert["provenance"], alert
        for origin in alert["provenance"]:
            assert origin["id"] in seed_ids
            assert origin["topic"] == settings.events_topic
            assert origin["partition"] in range(settings.partitions)
            assert isinstance(origin["offset"], int) and origin["offset"] >= 0
        assert {origin["id"] for origin in alert["provenance"]} & set(alert["cause_ids"]), alert
    export = next(alert for alert in alerts if alert["rule"] == "export-rule-change-china")
    assert export["cause_ids"] == ["seed-04-us-h200-cn-loosened"]


def test_matchers_select_which_alerts_a_subscriber_gets(settings_factory, start_worker, receiver_factory):
    settings = settings_factory()
    start_worker(settings)
    critical_only = receiver_factory()
    everything = receiver_factory()
    critical_id = subscribe(settings, critical_only, "--match", '{severity="critical"}')
    subscribe(settings, everything)

    publish(settings)

    everything.wait_for(3, timeout=DELIVERY_TIMEOUT)
    (request,) = critical_only.wait_for(1, timeout=DELIVERY_TIMEOUT)
    stays_quiet(critical_only, 1)
    body = check_notification(request, critical_id, "firing")
    assert body["alerts"][0]["labels"]["alertname"] == "export-rule-change-china"
    assert body["commonLabels"]["destination"] == "CN"
    assert len(everything.requests) == 3


def test_a_retraction_resolves_and_a_republished_fact_fires_again(settings_factory, start_worker, receiver_factory):
    settings = settings_factory()
    start_worker(settings)
    receiver = receiver_factory()
    subscription_id = subscribe(settings, receiver)
    publish(settings)
    first = receiver.wait_for(3, timeout=DELIVERY_TIMEOUT)
    (crossing,) = [request for request in first if rule_of(request) == "peer-overtake-tokens"]

    publish(settings, retraction_of(EVENT_9))

    resolved = receiver.wait_for(4, timeout=DELIVERY_TIMEOUT)[3]
    body = check_notification(resolved, subscription_id, "resolved")
    assert rule_of(resolved) == "peer-overtake-tokens"
    assert body["alerts"][0]["fingerprint"] == crossing.json()["alerts"][0]["fingerprint"]
    ends = body["alerts"][0]["endsAt"]
    assert ends != ZERO_TIME
    assert dt.datetime.strptime(ends, "%Y-%m-%dT%H:%M:%SZ").year >= 2025
    assert resolved.header("Idempotency-Key") != crossing.header("Idempotency-Key")

    publish(settings, event_9_again())

    again = receiver.wait_for(5, timeout=DELIVERY_TIMEOUT)[4]
    stays_quiet(receiver, 5)
    check_notification(again, subscription_id, "firing")
    assert rule_of(again) == "peer-overtake-tokens"
    assert again.json()["alerts"][0]["fingerprint"] == crossing.json()["alerts"][0]["fingerprint"]
    assert again.header("Idempotency-Key") not in {
        crossing.header("Idempotency-Key"),
        resolved.header("Idempotency-Key"),
    }


def test_replaying_the_log_notifies_nobody_twice(settings_factory, start_worker, receiver_factory):
    settings = settings_factory()
    first = start_worker(settings)
    receiver = receiver_factory()
    subscribe(settings, receiver)
    publish(settings)
    receiver.wait_for(3, timeout=DELIVERY_TIMEOUT)
    wait_for_sample(first.url, sample("tracker_notifications_total", outcome="delivered"), lambda v: v >= 3)

    # Same app id: the tables come back from their changelogs, offsets from the group.
    first.stop()
    assert first.process.returncode == 0
    restarted = start_worker(settings)

    wait_until("the restarted worker to restore its alerts", lambda: len(alerts_of(restarted.url)) == 3, timeout=60)
    stays_quiet(receiver, 3)
    restored = alert_states(restarted.url)
    assert {state[1] for state in restored} == set(EXPECTED_RULES)

    # A new app id on the same topics: a new consumer group re-folds the log from
    # offset 0, re-evaluates every rule and re-publishes the transitions.
    refold = start_worker(settings_factory(topic_prefix=settings.topic_prefix, app_id=f"{settings.app_id}-refold"))

    wait_for_transitions(refold.url)
    wait_until("the re-folded alerts", lambda: alert_states(refold.url) == restored, timeout=60)
    # 3 transitions the first worker published plus the 3 the new one re-published.
    skipped = wait_for_sample(
        refold.url, sample("tracker_notifications_total", outcome="duplicate_skipped"), lambda v: v >= 6
    )
    stays_quiet(receiver, 3)
    assert skipped == 6
    assert outcome(refold.url, "delivered") == 0
    assert firing_rules(refold.url) == set(EXPECTED_RULES)


def test_failed_deliveries_are_retried_until_the_receiver_accepts(settings_factory, start_worker, receiver_factory):
    settings = settings_factory()
    worker = start_worker(settings)
    receiver = receiver_factory()
    receiver.fail_next(3, status=503)
    subscription_id = subscribe(settings, receiver)

    publish(settings)

    receiver.wait_for(3, timeout=DELIVERY_TIMEOUT, succeeded=True)
    stays_quiet(receiver, 6)
    requests = receiver.requests
    assert [request.status for request in requests] == [503, 503, 503, 200, 200, 200]
    successes = Counter(request.header("Idempotency-Key") for request in requests if request.succeeded)
    assert sorted(successes.values()) == [1, 1, 1]
    assert {request.header("Idempotency-Key") for request in requests[:4]} == {requests[3].header("Idempotency-Key")}
    assert notification_rules(receiver.succeeded()) == ONE_EACH
    for request in requests:
        check_notification(request, subscription_id, "firing")
    assert (
        wait_for_sample(worker.url, sample("tracker_notifications_total", outcome="delivered"), lambda v: v >= 3) == 3
    )
    assert outcome(worker.url, "retried") >= 3
    assert outcome(worker.url, "dead_lettered") == 0


def test_a_crash_between_transition_and_delivery_loses_no_notification(
    settings_factory, start_worker, receiver_factory
):
    # How long the group waits for the killed member before the restarted worker gets its partitions.
    settings = settings_factory(session_timeout_seconds=10)
    worker = start_worker(settings)
    receiver = receiver_factory(up=False)
    subscription_id = subscribe(settings, receiver, "--max-attempts", "50")

    publish(settings)
    wait_for_transitions(worker.url)
    # The worker has tried, and failed, to reach the receiver.
    wait_for_sample(worker.url, sample("tracker_notifications_total", outcome="retried"), lambda v: v >= 1)
    worker.kill()
    assert worker.process.returncode == -signal.SIGKILL
    assert receiver.requests == []
    transitions = [json.loads(record.value) for record in read_topic(settings, settings.alerts_topic, at_least=3)]
    expected_keys = {transition["idempotency_key"] for transition in transitions}
    assert len(expected_keys) == 3

    receiver.start()
    restarted = start_worker(settings)

    def delivered_keys() -> set[str | None]:
        return {request.header("Idempotency-Key") for request in receiver.succeeded()}

    with contextlib.suppress(TrackerError):
        # The receiver is healthy now: a successful run delivers within a second or two.
        wait_until("every transition delivered", lambda: delivered_keys() >= expected_keys, timeout=30)
    outcomes = {name: outcome(restarted.url, name) for name in ("delivered", "retried", "duplicate_skipped")}
    assert delivered_keys() == expected_keys, f"30 s after the restart; restarted worker's notifications: {outcomes}"
    requests = receiver.requests
    assert {request.header("Idempotency-Key") for request in requests} == expected_keys
    for request in requests:
        check_notification(request, subscription_id, "firing")
    assert set(notification_rules(requests)) == set(EXPECTED_RULES)
    assert firing_rules(restarted.url) == set(EXPECTED_RULES)


def read_events(response: Any, into: queue.Queue[tuple[str, dict[str, Any]] | BaseException]) -> None:
    """Parse Server-Sent Events from a streaming response into ``into`` until it ends."""
    try:
        fields: dict[str, str] = {}
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if line == "":
                if "event" in fields:
                    into.put((fields["event"], json.loads(fields["data"])))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
    except BaseException as exc:  # the worker went away, or the test closed the stream
        into.put(exc)


def test_the_alert_stream_sends_matching_transitions_as_server_sent_events(settings_factory, start_worker):
    settings = settings_factory()
    worker = start_worker(settings)
    match = urllib.parse.quote('{severity="critical"}')
    connection = http.client.HTTPConnection("127.0.0.1", settings.http_port, timeout=30)
    connection.request("GET", f"/v1/alerts/stream?match={match}")
    response = connection.getresponse()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.readline() == b": connected\n"
    events: queue.Queue[tuple[str, dict[str, Any]] | BaseException] = queue.Queue()
    reader = threading.Thread(target=read_events, args=(response, events), daemon=True)
    reader.start()

    try:
        publish(settings)

        received = events.get(timeout=DELIVERY_TIMEOUT)
        assert not isinstance(received, BaseException), received
        name, transition = received
        assert name == "firing"
        assert transition["status"] == "firing"
        assert transition["alert"]["rule"] == "export-rule-change-china"
        assert transition["alert"]["labels"]["destination"] == "CN"
        assert transition["provenance"]["cause_ids"] == ["seed-04-us-h200-cn-loosened"]
        # The two warnings fire too, but do not match.
        wait_for_transitions(worker.url)
        time.sleep(QUIET_SECONDS)
        assert events.empty(), events.get_nowait()
    finally:
        # Shutting the socket down ends the reader's blocking read at once; closing the
        # response from this thread would wait for the reader (up to the 15 s keepalive).
        if connection.sock is not None:
            connection.sock.shutdown(socket.SHUT_RDWR)
        reader.join(timeout=10)
        connection.close()


def test_a_stopping_worker_ends_its_alert_streams_and_stops_without_being_killed(settings_factory, start_worker):
    settings = settings_factory()
    worker = start_worker(settings)
    connection = http.client.HTTPConnection("127.0.0.1", settings.http_port, timeout=60)
    connection.request("GET", "/v1/alerts/stream")
    response = connection.getresponse()
    assert response.readline() == b": connected\n"

    # SIGTERM, then SIGKILL if the worker is still there 20 s later (the stream used to hold
    # the web server up until it went idle for stream_max_idle_seconds: two minutes).
    worker.stop()

    try:
        lines = [line for line in response.read().decode().splitlines() if line]
    finally:
        connection.close()
    assert lines == [": closed, the worker is stopping; reconnect"]
    assert worker.process.returncode == 0, worker.log.read_text()[-2000:]


def test_subscription_api_errors_name_the_field(settings_factory, start_worker, receiver_factory):
    settings = settings_factory()
    worker = start_worker(settings)
    url = f"{worker.url}/v1/subscriptions"
    good = {"owner": "t", "channel": {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": SECRET}}
    cases = {
        "channel.url": {**good, "channel": {**good["channel"], "url": "ftp://127.0.0.1/hook"}},
        "channel.secret": {**good, "channel": {**good["channel"], "secret": "short"}},
        "matchers": {**good, "matchers": '{severity="critical"'},
    }

    for path, body in cases.items():
        status, document = post(url, json.dumps(body).encode(), content_type="application/json")
        assert status == 422, document
        assert [error["path"] for error in document["errors"]] == [path]
    # A label no alert carries would match nothing, silently: refused, naming it and the known ones.
    status, document = post(
        url, json.dumps({**good, "matchers": '{rule="peer-overtake-tokens"}'}).encode(), content_type="application/json"
    )
    assert status == 422, document
    (error,) = document["errors"]
    assert error["path"] == "matchers"
    assert error["reason"].startswith("unknown label 'rule': alerts carry only alertname, ")
    match = urllib.parse.quote('{rule="peer-overtake-tokens"}')
    status, document = call("GET", f"{worker.url}/v1/alerts/stream?match={match}")
    assert status == 400
    assert document["error"].startswith("unknown label 'rule'")
    status, document = call("GET", f"{url}/nope")
    assert status == 404
    assert "nope" in document["error"]
    rejected = run_cli(settings, "subscribe", "--owner", "t", "--webhook", "http://127.0.0.1:9/", "--secret", "short")
    assert rejected.returncode == 1
    assert rejected.stderr.startswith("channel.secret: ")
    assert call("GET", url) == (200, {"subscriptions": []})

    receiver = receiver_factory()
    subscription_id = subscribe(settings, receiver)
    status, document = call("GET", f"{url}/{subscription_id}")
    assert status == 200
    assert document["channel"]["secret"] == "**********"

    deleted = run_cli(settings, "unsubscribe", subscription_id)

    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == f"deleted {subscription_id}"
    assert call("GET", f"{url}/{subscription_id}")[0] == 404
    assert call("DELETE", f"{url}/{subscription_id}")[0] == 404
    assert run_cli(settings, "unsubscribe", subscription_id).returncode == 1
    assert run_cli(settings, "subscriptions").stdout.startswith("no subscriptions")
