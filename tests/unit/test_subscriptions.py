"""Subscriptions: validation, secrets kept out of sight, the Alertmanager v4 body, and signatures."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tracker.core.alerts import Alert, Transition
from tracker.core.decode import field_errors
from tracker.core.subscriptions import Subscription, sign, verify, webhook_body
from tracker.core.transitions import Provenance, transition_document

pytestmark = pytest.mark.unit

laws = settings(max_examples=200, deadline=None)

SECRET = "0123456789abcdef-secret"
EVALUATED_AT = 1_767_225_600.0  # 2026-01-01T00:00:00Z
EXTERNAL_URL = "http://127.0.0.1:6066"


def subscription_data(**overrides: Any) -> dict[str, Any]:
    """Return a valid webhook subscription as JSON data, with fields overridden."""
    data: dict[str, Any] = {
        "id": "policy-desk",
        "owner": "policy@example.org",
        "matchers": '{severity="critical"}',
        "channel": {"type": "webhook", "url": "https://hooks.example.org/alerts", "secret": SECRET},
    }
    data.update(overrides)
    return data


def channel(**overrides: Any) -> dict[str, Any]:
    """Return a valid webhook channel with fields overridden."""
    return {"type": "webhook", "url": "https://hooks.example.org/alerts", "secret": SECRET, **overrides}


def crossing_alert() -> Alert:
    """Return the seed article's peer-crossing alert as the evaluation produces it."""
    return Alert(
        fingerprint="55a1652a499d58e8",
        rule="peer-overtake-tokens",
        severity="warning",
        state="firing",
        labels={
            "alertname": "peer-overtake-tokens",
            "severity": "warning",
            "entity": "bytedance",
            "peer": "google",
            "metric": "tokens_per_day",
        },
        annotations={"summary": "bytedance overtook google on tokens_per_day (ratio 1.163)"},
        since="2025-12",
        value=50 / 43,
        cause_ids=("seed-09-bytedance-tokens-2025-12", "seed-10-google-tokens-2025-12"),
        rule_version="d3841841327a",
    )


def transition(status: str = "firing", until: str = "2026-02") -> dict[str, Any]:
    """Return the alerts-topic record of the crossing alert's transition (resolved in event time at ``until``)."""
    alert = crossing_alert()
    if status == "resolved":
        alert = alert._replace(state="resolved", until=until)
    provenance = [Provenance("seed-09-bytedance-tokens-2025-12", "tracker.events", 2, 41)]
    document = transition_document(Transition(status, alert), provenance, EVALUATED_AT)  # type: ignore[arg-type]
    return json.loads(json.dumps(document))  # type: ignore[no-any-return]


# --- validation --------------------------------------------------------------------------------------------


def test_a_valid_webhook_subscription_has_sensible_defaults() -> None:
    # Arrange
    data = subscription_data(matchers="{}")

    # Act
    sub = Subscription.model_validate(data)

    # Assert
    assert sub.send_resolved is True
    assert sub.repeat_interval == 0
    assert sub.channel.max_attempts == 8  # type: ignore[union-attr]
    assert sub.parsed_matchers == ()


@pytest.mark.parametrize(
    ("overrides", "where", "reason"),
    [
        ({"channel": channel(url="ftp://hooks.example.org/alerts")}, ("channel", "webhook", "url"), "http"),
        ({"channel": channel(url="hooks.example.org/alerts")}, ("channel", "webhook", "url"), "http"),
        ({"channel": channel(secret="too-short")}, ("channel", "webhook", "secret"), "at least 16"),
        ({"channel": channel(max_attempts=0)}, ("channel", "webhook", "max_attempts"), "greater than or equal to 1"),
        ({"channel": channel(max_attempts=51)}, ("channel", "webhook", "max_attempts"), "less than or equal to 50"),
        ({"channel": channel(headers={})}, ("channel", "webhook", "headers"), "Extra inputs"),
        ({"channel": {"type": "email"}}, ("channel",), "does not match any of the expected tags"),
        ({"matchers": '{severity="critical"'}, ("matchers",), "missing closing brace"),
        ({"matchers": '{entity=~"("}'}, ("matchers",), "bad regular expression"),
        ({"matchers": '{alertname=~"a{4294967296}"}'}, ("matchers",), "repetition count {4294967296} is over 1000"),
        ({"matchers": '{alertname=~"' + "(" * 1000 + '"}'}, ("matchers",), "bad regular expression: missing )"),
        ({"matchers": '{alertname=~"(a)\\\\1"}'}, ("matchers",), "backreferences are not supported"),
        ({"id": "Policy Desk"}, ("id",), "should match pattern"),
        ({"owner": ""}, ("owner",), "at least 1 character"),
        ({"repeat_interval": -1}, ("repeat_interval",), "greater than or equal to 0"),
        ({"colour": "red"}, ("colour",), "Extra inputs are not permitted"),
    ],
)
def test_an_invalid_subscription_is_refused_naming_the_field(
    overrides: dict[str, Any], where: tuple[str, ...], reason: str
) -> None:
    # Arrange
    data = subscription_data(**overrides)

    # Act
    with pytest.raises(ValidationError) as refused:
        Subscription.model_validate(data)

    # Assert: exactly one problem, located at the field.
    errors = refused.value.errors()
    assert [error["loc"] for error in errors] == [where]
    assert reason in errors[0]["msg"]


@pytest.mark.parametrize(
    ("secret", "reason"),
    [("too-short", "at least 16 characters"), ("", "at least 16 characters"), ("s" * 257, "at most 256 characters")],
)
def test_a_secret_of_the_wrong_length_is_refused_in_characters_without_telling_its_length(
    secret: str, reason: str
) -> None:
    # Arrange
    data = subscription_data(channel=channel(secret=secret))

    # Act
    with pytest.raises(ValidationError) as refused:
        Subscription.model_validate(data)
    errors = field_errors(refused.value, frozenset({"webhook", "sse"}))

    # Assert: what the API answers (the secret's own length is not echoed back).
    assert [(error.path, error.reason) for error in errors] == [("channel.secret", reason)]


def test_the_public_form_redacts_the_secret_and_the_stored_form_keeps_it() -> None:
    # Arrange
    sub = Subscription.model_validate(subscription_data())

    # Act
    public, stored = sub.public(), sub.stored()

    # Assert
    assert public["channel"]["secret"] == "**********"
    assert SECRET not in json.dumps(public)
    assert SECRET not in repr(sub)
    assert stored["channel"]["secret"] == SECRET
    assert Subscription.model_validate(stored) == sub
    assert {key: value for key, value in public.items() if key != "channel"} == {
        key: value for key, value in stored.items() if key != "channel"
    }


def test_an_sse_subscription_has_no_secret_to_redact() -> None:
    # Arrange
    sub = Subscription.model_validate(subscription_data(channel={"type": "sse"}))

    # Act
    public, stored = sub.public(), sub.stored()

    # Assert
    assert public == stored
    assert public["channel"] == {"type": "sse"}


@pytest.mark.parametrize(
    ("send_resolved", "status", "labels", "expected"),
    [
        (True, "firing", {"severity": "critical"}, True),
        (True, "resolved", {"severity": "critical"}, True),
        (False, "firing", {"severity": "critical"}, True),
        (False, "resolved", {"severity": "critical"}, False),
        (True, "firing", {"severity": "warning"}, False),
    ],
)
def test_a_subscription_wants_matching_alerts_and_resolutions_only_if_asked(
    send_resolved: bool, status: str, labels: dict[str, str], expected: bool
) -> None:
    # Arrange
    sub = Subscription.model_validate(subscription_data(send_resolved=send_resolved))

    # Act
    wanted = sub.wants(labels, status)

    # Assert
    assert wanted is expected


# --- the webhook body ----------------------------------------------------------------------------------------


def test_a_firing_body_has_the_alertmanager_v4_shape_and_our_provenance() -> None:
    # Arrange
    document = transition("firing")

    # Act
    body = webhook_body("policy-desk", document, EXTERNAL_URL)

    # Assert: the envelope.
    alert = crossing_alert()
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "policy-desk"
    assert body["truncatedAlerts"] == 0
    assert body["groupKey"] == '{}:{alertname="peer-overtake-tokens"}'
    assert body["groupLabels"] == {"alertname": "peer-overtake-tokens"}
    assert body["commonLabels"] == alert.labels
    assert body["commonAnnotations"] == alert.annotations
    assert body["externalURL"] == EXTERNAL_URL
    # One alert, starting at the start of its event-time period, not ended.
    assert body["alerts"] == [
        {
            "status": "firing",
            "labels": alert.labels,
            "annotations": alert.annotations,
            "startsAt": "2025-12-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": f"{EXTERNAL_URL}/v1/alerts",
            "fingerprint": "55a1652a499d58e8",
        }
    ]
    # What we add rides under "tracker".
    assert body["tracker"] == {
        "idempotency_key": document["idempotency_key"],
        "since": "2025-12",
        "until": None,
        "value": pytest.approx(50 / 43),
        "provenance": {
            "events": [
                {"id": "seed-09-bytedance-tokens-2025-12", "topic": "tracker.events", "partition": 2, "offset": 41}
            ],
            "events_omitted": 0,
            "cause_ids": ["seed-09-bytedance-tokens-2025-12", "seed-10-google-tokens-2025-12"],
            "cause_count": 2,
            "rule_version": "d3841841327a",
        },
    }
    assert json.loads(json.dumps(body)) == body


def test_a_resolved_body_ends_in_event_time_when_the_condition_stopped_holding() -> None:
    # Arrange: evaluated on 2026-01-01 (wall clock), resolved by a fact of February 2026.
    document = transition("resolved", until="2026-02")

    # Act
    body = webhook_body("policy-desk", document, EXTERNAL_URL)

    # Assert: startsAt and endsAt are both event time, whenever the worker evaluated it.
    assert body["status"] == "resolved"
    assert body["alerts"][0]["status"] == "resolved"
    assert body["alerts"][0]["startsAt"] == "2025-12-01T00:00:00Z"
    assert body["alerts"][0]["endsAt"] == "2026-02-01T00:00:00Z"
    assert body["tracker"]["until"] == "2026-02"
    assert body["tracker"]["idempotency_key"] != transition("firing")["idempotency_key"]


def test_a_resolved_transition_written_before_until_existed_ends_at_its_evaluation_time() -> None:
    # Arrange: an alerts-topic record of an older worker has no "until".
    document = transition("resolved")
    del document["alert"]["until"]

    # Act
    body = webhook_body("policy-desk", document, EXTERNAL_URL)

    # Assert
    assert body["alerts"][0]["endsAt"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(("since", "starts"), [("2025", "2025-01-01"), ("2025-12-04", "2025-12-04")])
def test_starts_at_is_the_first_day_of_the_period_the_alert_started_in(since: str, starts: str) -> None:
    # Arrange
    document = transition("firing")
    document["alert"]["since"] = since

    # Act
    body = webhook_body("policy-desk", document, EXTERNAL_URL)

    # Assert
    assert body["alerts"][0]["startsAt"] == f"{starts}T00:00:00Z"
    assert body["tracker"]["since"] == since


# --- signatures ----------------------------------------------------------------------------------------------


def test_a_signature_is_a_timestamp_and_a_hex_hmac() -> None:
    # Arrange
    body = b'{"status":"firing"}'

    # Act
    header = sign(SECRET, body, 1_767_225_600)

    # Assert
    timestamp, digest = header.split(",")
    assert timestamp == "t=1767225600"
    assert digest.startswith("v1=")
    assert len(digest.removeprefix("v1=")) == 64
    assert int(digest.removeprefix("v1="), 16) >= 0


def test_a_receiver_accepts_a_fresh_signature_of_the_exact_body() -> None:
    # Arrange
    body = json.dumps(webhook_body("policy-desk", transition(), EXTERNAL_URL), sort_keys=True).encode()
    header = sign(SECRET, body, 1_767_225_600)

    # Act
    accepted = verify(SECRET, body, header, now=1_767_225_600 + 299)

    # Assert
    assert accepted


@pytest.mark.parametrize(
    ("secret", "body", "now", "why"),
    [
        (SECRET, b'{"status":"resolved"}', 1_767_225_600, "tampered body"),
        ("another-secret-entirely", b'{"status":"firing"}', 1_767_225_600, "wrong secret"),
        (SECRET, b'{"status":"firing"}', 1_767_225_600 + 301, "stale timestamp"),
        (SECRET, b'{"status":"firing"}', 1_767_225_600 - 301, "timestamp from the future"),
    ],
)
def test_a_receiver_refuses_a_signature_that_does_not_fit(secret: str, body: bytes, now: int, why: str) -> None:
    # Arrange
    header = sign(SECRET, b'{"status":"firing"}', 1_767_225_600)

    # Act
    accepted = verify(secret, body, header, now=now)

    # Assert
    assert not accepted, why


@pytest.mark.parametrize(
    "header",
    ["", "garbage", "v1=abc", "t=soon,v1=abc", "t=1767225600", "t=1767225600,v1="],
)
def test_a_receiver_refuses_a_malformed_signature_header(header: str) -> None:
    # Arrange
    body = b'{"status":"firing"}'

    # Act
    accepted = verify(SECRET, body, header, now=1_767_225_600)

    # Assert
    assert not accepted


secrets = st.text(min_size=16, max_size=64, alphabet=st.characters(exclude_categories=["Cs"]))
timestamps = st.integers(0, 4_000_000_000)


@laws
@given(secrets, st.binary(max_size=256), timestamps, st.integers(-300, 300))
def test_every_signature_verifies_within_the_tolerance(secret: str, body: bytes, timestamp: int, skew: int) -> None:
    # Arrange
    header = sign(secret, body, timestamp)

    # Act
    accepted = verify(secret, body, header, now=timestamp + skew)

    # Assert
    assert accepted


@laws
@given(secrets, st.binary(min_size=1, max_size=256), timestamps, st.data())
def test_changing_any_byte_of_the_body_breaks_the_signature(
    secret: str, body: bytes, timestamp: int, data: st.DataObject
) -> None:
    # Arrange
    header = sign(secret, body, timestamp)
    index = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]

    # Act
    accepted = verify(secret, tampered, header, now=timestamp)

    # Assert
    assert not accepted
