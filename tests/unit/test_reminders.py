"""Reminders of firing alerts (``repeat_interval``): which fall due, when, and under which key."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_subscriptions import crossing_alert, subscription_data
from tracker.core.subscriptions import Subscription
from tracker.core.transitions import due_reminders

pytestmark = pytest.mark.unit

FIRED_AT = 1_767_225_600.0
HOUR = 3600.0


def entry(state: str = "firing") -> dict[str, Any]:
    """Return an alert entry as the groups table stores it, fired at FIRED_AT."""
    alert = crossing_alert()._replace(state=state).to_json()
    return {"alert": alert, "idempotency_key": "55a1652a499d58e8:firing:abc", "fired_at": FIRED_AT, "provenance": []}


def subscription(**overrides: Any) -> Subscription:
    """Return a webhook subscription to every alert, with fields overridden."""
    return Subscription.model_validate(subscription_data(**{"matchers": "", "repeat_interval": HOUR, **overrides}))


def test_reminder_n_falls_due_n_intervals_after_the_firing_under_its_own_key() -> None:
    subs = [subscription()]

    before = list(due_reminders(subs, [entry()], FIRED_AT + HOUR - 1))
    first = list(due_reminders(subs, [entry()], FIRED_AT + HOUR))
    third = list(due_reminders(subs, [entry()], FIRED_AT + 3.5 * HOUR))

    assert before == []
    assert [r.key for r in first] == ["55a1652a499d58e8:firing:abc:repeat:1"]
    assert [r.key for r in third] == ["55a1652a499d58e8:firing:abc:repeat:3"]
    assert third[0].document["idempotency_key"] == third[0].key
    assert third[0].document["provenance"]["reminder"] == 3
    assert third[0].document["status"] == "firing"
    assert third[0].subscription is subs[0]


def test_no_reminder_without_an_interval_for_an_alert_not_firing_or_one_the_matchers_exclude() -> None:
    later = FIRED_AT + 10 * HOUR

    assert list(due_reminders([subscription(repeat_interval=0)], [entry()], later)) == []
    assert list(due_reminders([subscription()], [entry(state="pending")], later)) == []
    assert list(due_reminders([subscription(matchers='{severity="critical"}')], [entry()], later)) == []
