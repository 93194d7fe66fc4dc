"""Hostile label matchers, end to end: a pattern that froze the worker, and patterns that crashed it.

Issue 14: with three ``GET /v1/alerts/stream?match={alertname=~"export-ru(.*.*)*x"}``
open, one ``export_rule.changed`` made /healthz take 29.8 s and both consumer
groups' heartbeats expire, because a backtracking engine matched the alert's
name on the event loop. ``a{4294967296}`` and 1,000 nested "(" answered 500.
Matchers now run on RE2 in linear time: /healthz must answer within a second
while such streams (and a webhook subscription with the same pattern) match a
transition, and the crashing patterns must be refused with 400 on a stream and
422 naming ``matchers`` on a subscription, with no traceback in the log.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from tests.conftest import SEED, RunningWorker
from tests.integration.helpers import post
from tracker.polling import wait_until
from tracker.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.faults]

HOSTILE = '{alertname=~"export-ru(.*.*)*x"}'
HOSTILE_STREAMS = 3
HEALTH_BUDGET_SECONDS = 1.0
HEALTH_PROBE_INTERVAL = 0.05
DELIVERY_TIMEOUT = 60
# Patterns that overflowed, recursed or need what RE2 lacks, with the words of the refusal.
REFUSED = {
    "a{4294967296}": "repetition count {4294967296} is over 1000",
    "(" * 1000: "bad regular expression: missing )",
    "a" * 1001: "longer than 1000 characters",
    r"(a)\1": "backreferences are not supported",
}


def export_rule_event() -> dict[str, Any]:
    """Return the seed's export_rule.changed to CN: it fires export-rule-change-china."""
    events = [json.loads(line) for line in SEED.read_text().splitlines() if line.strip()]
    return next(event for event in events if event["type"] == "export_rule.changed" and event["destination"] == "CN")


def selector(pattern: str) -> str:
    """Return ``{alertname=~"pattern"}`` with the pattern quoted."""
    quoted = pattern.replace("\\", "\\\\").replace('"', '\\"')
    return f'{{alertname=~"{quoted}"}}'


def get(url: str) -> tuple[int, dict[str, Any]]:
    """GET a URL and return (status, decoded JSON), or (200, {}) for a stream, left unread."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            if response.headers.get_content_type() == "text/event-stream":
                return response.status, {}
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def subscribe(worker: RunningWorker, matchers: str, channel: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST a subscription; return (status, decoded JSON)."""
    body = json.dumps({"owner": "hostile", "matchers": matchers, "channel": channel}).encode()
    return post(f"{worker.url}/v1/subscriptions", body, content_type="application/json")


@contextmanager
def stream(worker: RunningWorker, query: str) -> Iterator[http.client.HTTPResponse]:
    """Hold ``GET /v1/alerts/stream?<query>`` open, past its first line, until the block ends."""
    connection = http.client.HTTPConnection("127.0.0.1", worker.settings.http_port, timeout=DELIVERY_TIMEOUT)
    try:
        connection.request("GET", f"/v1/alerts/stream?{query}")
        response = connection.getresponse()
        assert response.status == 200, response.read()[:300]
        assert response.readline() == b": connected\n"
        yield response
    finally:
        if connection.sock is not None:
            connection.sock.shutdown(socket.SHUT_RDWR)
        connection.close()


def next_transition(response: http.client.HTTPResponse) -> dict[str, Any]:
    """Read Server-Sent Events until one with data arrives; return its data (comments are skipped)."""
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line.startswith("data: "):
            return dict(json.loads(line.removeprefix("data: ")))
        assert not line.startswith(": closed"), line
    raise AssertionError("the stream ended without a transition")


class HealthProbe:
    """Ask /healthz over and over from a thread; keep how long each answer took."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seconds: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=DELIVERY_TIMEOUT)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=DELIVERY_TIMEOUT) as response:
                    response.read()
            except OSError as exc:
                self.failures.append(repr(exc))
            self.seconds.append(time.perf_counter() - started)
            self._stop.wait(HEALTH_PROBE_INTERVAL)


@pytest.fixture
def notifying_worker(
    settings_factory: Callable[..., Settings], worker_factory: Callable[[Settings], RunningWorker]
) -> Iterator[RunningWorker]:
    """Start a worker that reads subscriptions and alerts; print its log tail at teardown."""
    worker = worker_factory(settings_factory())
    wait_until("the worker's notifications", lambda: worker.health()["notifications_ready"], timeout=60)
    yield worker
    print(f"--- {worker.log} (exit {worker.process.poll()})\n{worker.log.read_text()[-3000:]}")


def test_healthz_answers_within_a_second_while_hostile_streams_match_an_export_rule_change(
    notifying_worker: RunningWorker,
) -> None:
    # Arrange: the hostile pattern as two ad-hoc streams, one SSE subscription's stream and a
    # webhook subscription (the notifier matches those); a witness stream matches the alert.
    worker = notifying_worker
    sse_status, sse = subscribe(worker, HOSTILE, {"type": "sse"})
    hook_status, hook = subscribe(
        worker, HOSTILE, {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s" * 16}
    )
    assert (sse_status, hook_status) == (201, 201), (sse, hook)
    queries = [f"match={urllib.parse.quote(HOSTILE)}"] * (HOSTILE_STREAMS - 1) + [f"subscription={sse['id']}"]
    witness_query = "match=" + urllib.parse.quote('{alertname="export-rule-change-china"}')

    with ExitStack() as streams:
        hostile = [streams.enter_context(stream(worker, query)) for query in queries]
        witness = streams.enter_context(stream(worker, witness_query))

        # Act: the witness gets the transition only once every feed has been matched.
        with HealthProbe(worker.url) as probe:
            status, document = post(f"{worker.url}/v1/events", json.dumps(export_rule_event()).encode())
            assert status == 202, document
            transition = next_transition(witness)
            time.sleep(HEALTH_BUDGET_SECONDS)  # and the notifier matched the webhook subscription

        # Assert
        slowest = max(probe.seconds)
        print(
            f"/healthz with {len(hostile)} hostile streams and a hostile webhook subscription open, "
            f"across an export_rule.changed: {len(probe.seconds)} probes, slowest {slowest:.3f} s"
        )
        assert transition["alert"]["rule"] == "export-rule-change-china"
        assert probe.failures == []
        assert slowest < HEALTH_BUDGET_SECONDS, sorted(probe.seconds)[-5:]
        assert worker.health()["status"] == "ok"


def test_a_pattern_that_crashed_the_parser_is_refused_naming_the_problem(notifying_worker: RunningWorker) -> None:
    # Arrange: patterns that answered 500 (OverflowError, RecursionError) or need backtracking.
    worker = notifying_worker
    streams: dict[str, tuple[int, dict[str, Any]]] = {}
    subscriptions: dict[str, tuple[int, dict[str, Any]]] = {}

    # Act
    for pattern in REFUSED:
        query = urllib.parse.urlencode({"match": selector(pattern)})
        streams[pattern] = get(f"{worker.url}/v1/alerts/stream?{query}")
        subscriptions[pattern] = subscribe(worker, selector(pattern), {"type": "sse"})

    # Assert: 400 on a stream, 422 naming ``matchers`` on a subscription, each with the reason.
    for pattern, reason in REFUSED.items():
        status, document = streams[pattern]
        assert status == 400, (pattern[:20], document)
        assert document["error"].startswith("alertname: ") and reason in document["error"], document
        status, document = subscriptions[pattern]
        assert status == 422, (pattern[:20], document)
        assert [error["path"] for error in document["errors"]] == ["matchers"], document
        assert reason in document["errors"][0]["reason"], document
    assert get(f"{worker.url}/v1/subscriptions") == (200, {"subscriptions": []})
    assert worker.health()["status"] == "ok"
    log = worker.log.read_text()
    assert "Traceback" not in log, log[-3000:]
