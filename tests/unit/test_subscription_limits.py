"""Subscriptions a hostile or careless client sends: bad ports, tiny reminder periods, too many."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from tracker.core.subscriptions import Subscription, capacity_refusal
from tracker.errors import WebhookTargetRefused
from tracker.security import AddressPolicy, check_webhook_url
from tracker.settings import Settings
from tracker.worker.metrics import PipelineMetrics
from tracker.worker.notifications import Notifications

pytestmark = pytest.mark.unit

SECRET = "0123456789abcdef-secret"


def webhook(url: str = "https://hooks.example.org/alerts", **overrides: Any) -> dict[str, Any]:
    """Return a valid webhook subscription as JSON data, with fields overridden."""
    data: dict[str, Any] = {
        "id": "desk",
        "owner": "desk@example.org",
        "channel": {"type": "webhook", "url": url, "secret": SECRET},
    }
    data.update(overrides)
    return data


def refusal(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """Return the (location, message) of each reason the data is refused."""
    with pytest.raises(ValidationError) as refused:
        Subscription.model_validate(data)
    return [(error["loc"], error["msg"]) for error in refused.value.errors()]


# --- ports ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.org:99999/alerts",
        "https://hooks.example.org:abc/alerts",
        "https://hooks.example.org:0/alerts",
        "https://hooks.example.org:65536/alerts",
        "https://hooks.example.org:-1/alerts",
        "https://hooks.example.org:+443/alerts",
        "https://hooks.example.org:\uff14\uff14\uff13/alerts",  # full-width digits: int() would accept them
        "https://hooks.example.org:443:443/alerts",
        "https://[2001:db8::1]:99999/alerts",
    ],
)
def test_a_webhook_port_that_is_not_1_to_65535_is_refused_naming_the_url(url: str) -> None:
    # Act
    errors = refusal(webhook(url))

    # Assert
    assert len(errors) == 1
    where, reason = errors[0]
    assert where == ("channel", "webhook", "url")
    assert "port must be a number from 1 to 65535" in reason


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.org/alerts",
        "https://hooks.example.org:1/alerts",
        "https://hooks.example.org:65535/alerts",
        "http://hooks.example.org:8080",
        "https://[2001:db8::1]:8443/alerts",
        "https://[2001:db8::1]/alerts",
    ],
)
def test_a_webhook_with_no_port_or_a_valid_one_is_accepted(url: str) -> None:
    # Act
    sub = Subscription.model_validate(webhook(url))

    # Assert
    assert sub.channel.url == url  # type: ignore[union-attr]


@pytest.mark.parametrize("url", ["https://203.0.113.7:99999/h", "https://203.0.113.7:abc/h", "https://203.0.113.7:0/h"])
def test_the_delivery_check_refuses_a_bad_port_instead_of_raising_value_error(url: str) -> None:
    # Act
    with pytest.raises(WebhookTargetRefused) as refused:
        asyncio.run(check_webhook_url(url, AddressPolicy()))

    # Assert
    assert str(refused.value) == "the port must be a number from 1 to 65535"


# --- reminders -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [1e-300, 0.5, 1, 59.9])
def test_a_repeat_interval_under_a_minute_is_refused_naming_the_field(interval: float) -> None:
    # Act
    errors = refusal(webhook(repeat_interval=interval))

    # Assert
    assert errors == [(("repeat_interval",), "Value error, must be 0 (no reminders) or at least 60 seconds")]


@pytest.mark.parametrize("interval", [0, 60, 3600])
def test_no_reminders_or_one_a_minute_or_rarer_is_accepted(interval: float) -> None:
    # Act
    sub = Subscription.model_validate(webhook(repeat_interval=interval))

    # Assert
    assert sub.repeat_interval == interval


# --- caps ----------------------------------------------------------------------------------------------------


def subscriptions(count: int, owner: str, prefix: str) -> list[Subscription]:
    """Return ``count`` SSE subscriptions of one owner."""
    return [
        Subscription.model_validate({"id": f"{prefix}-{n}", "owner": owner, "channel": {"type": "sse"}})
        for n in range(count)
    ]


def test_an_owner_at_the_cap_cannot_add_one_more_but_may_replace_one() -> None:
    # Arrange
    existing = subscriptions(3, "alice", "a") + subscriptions(1, "bob", "b")
    one_more = Subscription.model_validate({"id": "a-new", "owner": "alice", "channel": {"type": "sse"}})
    replacing = Subscription.model_validate({"id": "a-1", "owner": "alice", "channel": {"type": "sse"}})
    for_bob = Subscription.model_validate({"id": "b-new", "owner": "bob", "channel": {"type": "sse"}})

    # Act
    refused = capacity_refusal(existing, one_more, per_owner=3, total=10)

    # Assert
    assert refused is not None
    assert refused.path == "owner"
    assert refused.reason == (
        "owner 'alice' already has 3 subscriptions, the most one owner may have "
        "(TRACKER_MAX_SUBSCRIPTIONS_PER_OWNER=3); delete one first"
    )
    assert capacity_refusal(existing, replacing, per_owner=3, total=10) is None
    assert capacity_refusal(existing, for_bob, per_owner=3, total=10) is None


def test_a_full_registry_refuses_a_new_subscription_but_not_a_replacement() -> None:
    # Arrange: five owners with one each, a total cap of five.
    existing = [sub for n in range(5) for sub in subscriptions(1, f"owner-{n}", f"s{n}")]
    newcomer = Subscription.model_validate({"id": "late", "owner": "owner-9", "channel": {"type": "sse"}})
    moved = Subscription.model_validate({"id": "s0-0", "owner": "owner-9", "channel": {"type": "sse"}})

    # Act
    refused = capacity_refusal(existing, newcomer, per_owner=100, total=5)

    # Assert
    assert refused is not None
    assert refused.path == ""
    assert "TRACKER_MAX_SUBSCRIPTIONS=5" in refused.reason
    assert capacity_refusal(existing, moved, per_owner=100, total=5) is None


def test_the_caps_are_settings_with_defaults() -> None:
    # Act
    settings = Settings()

    # Assert
    assert (settings.max_subscriptions_per_owner, settings.max_subscriptions) == (100, 1000)


# --- the registry --------------------------------------------------------------------------------------------


def stored(data: dict[str, Any]) -> bytes:
    """Return a registry record as another (older) worker may have written it, unvalidated."""
    return json.dumps(data).encode()


async def test_a_stored_subscription_that_no_longer_validates_is_ignored_not_fatal(tmp_path, caplog) -> None:
    # Arrange: written before today's checks, with a tiny reminder period and a bad port.
    notifications = Notifications(
        Settings(data_dir=tmp_path), PipelineMetrics.create(CollectorRegistry()).notifications, _no_dead_letter
    )
    registry = notifications.registry.data
    registry["ok"] = stored(webhook(id="ok"))
    registry["tiny"] = stored(webhook(id="tiny", repeat_interval=1e-300))
    registry["port"] = stored(webhook("https://hooks.example.org:99999/alerts", id="port"))

    # Act
    listed = [sub.id for sub in notifications.subscriptions()]
    found = {key: notifications.get(key) for key in ("ok", "tiny", "port", "absent")}

    # Assert
    assert listed == ["ok"]
    assert found["ok"] is not None
    assert [found[key] for key in ("tiny", "port", "absent")] == [None, None, None]
    assert "subscription 'tiny' is ignored" in caplog.text
    assert "99999/alerts" not in caplog.text and SECRET not in caplog.text


async def _no_dead_letter(record: dict[str, Any]) -> None:
    raise AssertionError(f"nothing is delivered here: {record}")
