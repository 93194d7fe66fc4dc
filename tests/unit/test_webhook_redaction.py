"""Webhook URLs may hold the receiver's credential in their path or query (Slack's do): readers who
may not write, and the notifications dead-letter topic, see scheme, host and port only."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tracker.core.alerts import Alert, Transition
from tracker.core.subscriptions import Subscription, redact_url
from tracker.core.transitions import Provenance, transition_document
from tracker.worker.delivery import Attempt, Notifier
from tracker.worker.metrics import PipelineMetrics

pytestmark = pytest.mark.unit

SECRET = "0123456789abcdef-secret"
SLACK = "https://hooks.slack.com/services/T0001/B0002/XXXXsecretpathXXXX"


def webhook(url: str, **overrides: Any) -> dict[str, Any]:
    """Return a valid webhook subscription as JSON data, with fields overridden."""
    data: dict[str, Any] = {
        "id": "desk",
        "owner": "desk@example.org",
        "channel": {"type": "webhook", "url": url, "secret": SECRET},
    }
    data.update(overrides)
    return data


# --- URLs shown to readers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (SLACK, "https://hooks.slack.com/<redacted>"),
        ("https://hooks.example.org:8443/a?token=t0ps3cret", "https://hooks.example.org:8443/<redacted>"),
        ("https://hooks.example.org?token=t0ps3cret", "https://hooks.example.org/<redacted>"),
        ("https://hooks.example.org/#frag", "https://hooks.example.org/<redacted>"),
        ("https://user:pass@hooks.example.org/", "https://hooks.example.org/"),
        ("http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080/<redacted>"),
        ("https://hooks.example.org", "https://hooks.example.org"),
        ("http://[::1/x", "<redacted>"),  # unparsable: nothing of it is shown
    ],
)
def test_a_redacted_url_keeps_scheme_host_and_port_only(url: str, shown: str) -> None:
    # Act
    redacted = redact_url(url)

    # Assert
    assert redacted == shown


def test_the_public_form_masks_the_url_path_unless_the_reader_may_write() -> None:
    # Arrange
    sub = Subscription.model_validate(webhook(SLACK))

    # Act
    for_readers, for_writers = sub.public(), sub.public(full_url=True)

    # Assert
    assert for_readers["channel"]["url"] == "https://hooks.slack.com/<redacted>"
    assert "XXXXsecretpathXXXX" not in json.dumps(for_readers)
    assert for_writers["channel"]["url"] == SLACK
    assert SECRET not in json.dumps(for_writers)


# --- dead letters ------------------------------------------------------------------------------------------------


async def test_a_dead_letter_shows_the_webhook_host_but_not_its_path_or_query() -> None:
    # Arrange: a receiver that refuses with 400, and an error text quoting the URL.
    url = SLACK + "?token=query-secret"
    sub = Subscription.model_validate(webhook(url, id="slack"))
    letters: list[dict[str, Any]] = []

    async def send(target: str, body: bytes, headers: dict[str, str]) -> Attempt:
        return Attempt(400, error=f"InvalidURL: {target}")

    async def dead_letter(record: dict[str, Any]) -> None:
        letters.append(record)

    async def mark(key: str) -> None:
        raise AssertionError("nothing is delivered")

    notifier = Notifier(
        subscriptions=lambda: [sub],
        delivered=lambda key: False,
        mark_delivered=mark,
        dead_letter=dead_letter,
        sender=send,
        outcomes=PipelineMetrics.create(CollectorRegistry()).notifications,
        external_url="http://127.0.0.1:6066",
        rng=random.Random(0),
    )
    alert = Alert(
        fingerprint="fp-1",
        rule="peer-overtake-tokens",
        severity="warning",
        state="firing",
        labels={"alertname": "peer-overtake-tokens", "entity": "bytedance"},
        annotations={"summary": "bytedance overtook google"},
        since="2025-12",
        value=1.163,
        cause_ids=("bytedance-tokens-2025-12",),
        rule_version="d3841841327a",
    )
    provenance = [Provenance("bytedance-tokens-2025-12", "tracker.events", 0, 7)]
    transition = json.loads(json.dumps(transition_document(Transition("firing", alert), provenance, 0.0)))

    # Act
    outcome = await notifier.deliver(sub, transition)

    # Assert
    assert outcome == "dead_lettered"
    assert letters[0]["url"] == "https://hooks.slack.com/<redacted>"
    assert letters[0]["last_error"] == "InvalidURL: https://hooks.slack.com/<redacted>"
    text = json.dumps(letters)
    assert "XXXXsecretpathXXXX" not in text and "query-secret" not in text
