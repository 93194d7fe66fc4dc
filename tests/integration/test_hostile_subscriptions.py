"""Hostile subscription requests on a real worker and broker (issue 14, findings 5, 6, 8 and 9).

A webhook URL may carry the receiver's credential in its path or query, as
Slack's do: readers who may not write, and the notifications dead-letter
topic, see its scheme, host and port only. Bad ports, deep JSON and tiny
reminder periods are refused naming the field; the subscription caps hold.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.conftest import SEED
from tests.integration.kafka_helpers import read_topic
from tests.integration.receivers import Receiver

pytestmark = pytest.mark.integration

TOKEN = "tok-hostile-0123456789abcdefABCDEF"
WRONG_TOKEN = "tok-wrong-00000000000000000000"
SECRET = "webhook-secret-that-must-stay-put"
PATH_SECRET = "B0002/XXXXpathsecretXXXX"
QUERY_SECRET = "querysecret0123"
BAD_PORTS = ("99999", "abc", "0")


def call(method: str, url: str, body: bytes | None = None, token: str | None = None) -> tuple[int, Any]:
    """Send a request; return (status, decoded JSON body), error statuses included."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def webhook(url: str, owner: str = "desk", **fields: Any) -> bytes:
    """Return a webhook subscription body."""
    channel = {"type": "webhook", "url": url, "secret": SECRET, "max_attempts": 1}
    return json.dumps({"owner": owner, "channel": channel, **fields}).encode()


def sse(owner: str, **fields: Any) -> bytes:
    """Return a live-feed subscription body."""
    return json.dumps({"owner": owner, "channel": {"type": "sse"}, **fields}).encode()


def test_hostile_subscriptions_are_refused_and_webhook_urls_stay_with_writers(
    settings_factory, start_worker, receiver: Receiver
):
    # Arrange: tokens configured, reads open (the default), small caps; the receiver refuses everything.
    settings = settings_factory(api_tokens=TOKEN, max_subscriptions_per_owner=2, max_subscriptions=3)
    worker = start_worker(settings)
    subscriptions = f"{worker.url}/v1/subscriptions"
    receiver.fail_next(100, status=400)  # a client error: dead-lettered at the first attempt
    hook = f"{receiver.url}/services/T0001/{PATH_SECRET}?token={QUERY_SECRET}"

    # Act 1: a Slack-style webhook, then the alerts of the seed article.
    created_status, created = call("POST", subscriptions, webhook(hook, id="slack"), TOKEN)
    published_status, _ = call("POST", f"{worker.url}/v1/events", SEED.read_bytes(), TOKEN)

    # Assert 1: the writer sees what it wrote; a reader without a (valid) token sees the host only.
    assert (created_status, created["channel"]["url"]) == (201, hook)
    assert published_status == 202
    readers = [
        call("GET", f"{subscriptions}/slack"),
        call("GET", f"{subscriptions}/slack", token=WRONG_TOKEN),
        call("GET", subscriptions),
    ]
    assert [status for status, _ in readers] == [200, 200, 200]
    assert readers[0][1]["channel"]["url"] == f"{receiver.url}/<redacted>"
    assert readers[1][1]["channel"]["url"] == f"{receiver.url}/<redacted>"
    assert [sub["channel"]["url"] for sub in readers[2][1]["subscriptions"]] == [f"{receiver.url}/<redacted>"]
    for _, document in readers:
        assert PATH_SECRET not in json.dumps(document) and QUERY_SECRET not in json.dumps(document)
    assert call("GET", f"{subscriptions}/slack", token=TOKEN) == (200, created)
    assert call("GET", subscriptions, token=TOKEN)[1]["subscriptions"] == [created]

    # Act 2: bad ports, deep JSON and a tiny reminder period.
    ports = {port: call("POST", subscriptions, webhook(f"http://127.0.0.1:{port}/h"), TOKEN) for port in BAD_PORTS}
    deep = call("POST", subscriptions, b"[" * 30_000 + b"]" * 30_000, TOKEN)
    deep_field = call("POST", subscriptions, b'{"owner": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", TOKEN)
    tiny = call("POST", subscriptions, sse("desk", repeat_interval=1e-300), TOKEN)

    # Assert 2: each refused naming the field and the reason, none a 500.
    for port, (status, document) in ports.items():
        assert status == 422, (port, document)
        assert document["errors"] == [
            {"path": "channel.url", "reason": f"the port must be a number from 1 to 65535, not {port!r}"}
        ]
    assert deep == (400, {"error": "JSON nested too deeply"})
    assert deep_field == (400, {"error": "JSON nested too deeply"})
    assert tiny == (
        422,
        {"errors": [{"path": "repeat_interval", "reason": "must be 0 (no reminders) or at least 60 seconds"}]},
    )

    # Act 3: fill the caps (2 per owner, 3 in all; "desk" already has one).
    second = call("POST", subscriptions, sse("desk", id="desk-2"), TOKEN)
    third = call("POST", subscriptions, sse("desk", id="desk-3"), TOKEN)
    other = call("POST", subscriptions, sse("other", id="other-1"), TOKEN)
    fourth = call("POST", subscriptions, sse("newcomer", id="new-1"), TOKEN)
    replaced = call("POST", subscriptions, sse("desk", id="desk-2", send_resolved=False), TOKEN)

    # Assert 3
    assert (second[0], other[0], replaced[0]) == (201, 201, 200)
    assert third[0] == 409
    assert third[1]["errors"][0]["path"] == "owner"
    assert "TRACKER_MAX_SUBSCRIPTIONS_PER_OWNER=2" in third[1]["errors"][0]["reason"]
    assert fourth[0] == 409
    assert "TRACKER_MAX_SUBSCRIPTIONS=3" in fourth[1]["errors"][0]["reason"]
    assert sorted(sub["id"] for sub in call("GET", subscriptions)[1]["subscriptions"]) == [
        "desk-2",
        "other-1",
        "slack",
    ]

    # Assert 4: the three alerts were dead-lettered, each showing the webhook's host only.
    records = read_topic(settings, settings.notifications_dead_letter_topic, at_least=3)
    letters = [record.value.decode() for record in records if record.value is not None]
    assert len(letters) == 3
    for letter in letters:
        assert json.loads(letter)["url"] == f"{receiver.url}/<redacted>"
        assert PATH_SECRET not in letter and QUERY_SECRET not in letter and SECRET not in letter
    assert {request.path for request in receiver.requests} == {f"/services/T0001/{PATH_SECRET}?token={QUERY_SECRET}"}


def test_with_the_api_open_every_reader_may_write_and_sees_the_whole_url(
    settings_factory, start_worker, receiver: Receiver
):
    # Arrange: no token configured, so anyone who can reach the worker may write.
    worker = start_worker(settings_factory())
    hook = f"{receiver.url}/services/T0001/{PATH_SECRET}"
    created_status, _ = call("POST", f"{worker.url}/v1/subscriptions", webhook(hook, id="open"))

    # Act
    status, found = call("GET", f"{worker.url}/v1/subscriptions/open")

    # Assert
    assert (created_status, status) == (201, 200)
    assert found["channel"]["url"] == hook
