"""What the alerts topic says of a transition: the alert, the records behind it, and its idempotency key.

A transition document is the record a subscriber finally receives. Its
idempotency key names the transition, not its delivery, so a replay of the
same live facts gives the same key and a receiver can drop the repeat.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from tracker.core.alerts import Alert, Transition
from tracker.core.subscriptions import Subscription, WebhookChannel

__all__ = [
    "MAX_PROVENANCE_EVENTS",
    "Provenance",
    "Reminder",
    "Trail",
    "document",
    "due_reminders",
    "transition_document",
]

#: Records kept as an alert's provenance when none of its causes was in the batch that changed it.
PROVENANCE_FALLBACK = 5
#: Records a transition lists at most (``events_omitted`` counts the others): the bytes written
#: per transition stay bounded whatever the batch.
MAX_PROVENANCE_EVENTS = 20


class Provenance(NamedTuple):
    """Where a folded record came from (a tuple: the fold makes one per record)."""

    event_id: str
    topic: str
    partition: int
    offset: int

    def to_json(self) -> dict[str, Any]:
        """Return the provenance as JSON data."""
        return {
            "id": self.event_id,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
        }


def transition_document(transition: Transition, provenance: Iterable[Provenance], at: float) -> dict[str, Any]:
    """Return the alerts-topic record of a transition, with the records that caused it."""
    return document(transition, Trail(list(provenance)), at)


def document(transition: Transition, trail: Trail, at: float) -> dict[str, Any]:
    """Return the alerts-topic record of a transition, its causes found in ``trail``."""
    alert = transition.alert
    # The key names the transition, not its delivery: the same live facts give the
    # same key on any replay, and a fact re-published under a new id gives a new one
    # (among the listed causes; the count stands for the others).
    named: list[Any] = [alert.since, list(alert.cause_ids)]
    if not alert.causes_listed:
        named.append(alert.cause_count)
    cause = hashlib.sha256(json.dumps(named).encode()).hexdigest()[:12]
    events = trail.causes(alert)
    return {
        "status": transition.status,
        "idempotency_key": f"{alert.fingerprint}:{transition.status}:{cause}",
        "alert": alert.to_json(),
        "provenance": {
            "events": [item.to_json() for item in events[:MAX_PROVENANCE_EVENTS]],
            "events_omitted": max(0, len(events) - MAX_PROVENANCE_EVENTS),
            "cause_ids": list(alert.cause_ids),
            "cause_count": max(alert.cause_count, len(alert.cause_ids)),
            "rule_version": alert.rule_version,
        },
        "evaluated_at": at,
    }


class Trail:
    """A fold group's records in one batch, found by event id (built on the first question).

    A transition and an alert entry carry their alert's own causes, never the whole
    trail: a batch of N facts in one group made N transitions, each with N records
    (6.4 MB written for 250 facts, MessageSizeTooLargeError at 16,000).
    """

    def __init__(self, provenance: list[Provenance]) -> None:
        self.provenance = provenance
        self._by_id: dict[str, list[Provenance]] | None = None

    def causes(self, alert: Alert) -> list[Provenance]:
        """Return the records of the batch that caused ``alert``, else the first few of the group's."""
        if self._by_id is None:
            self._by_id = {}
            for item in self.provenance:
                self._by_id.setdefault(item.event_id, []).append(item)
        found = [item for event_id in alert.cause_ids for item in self._by_id.get(event_id, ())]
        return found or self.provenance[:PROVENANCE_FALLBACK]


class Reminder(NamedTuple):
    """A firing alert's reminder due to one subscription, as the record to deliver."""

    subscription: Subscription
    key: str
    document: dict[str, Any]


def due_reminders(
    subscriptions: Sequence[Subscription], entries: Iterable[dict[str, Any]], now: float
) -> Iterator[Reminder]:
    """Yield the reminders due at ``now`` for the firing alert entries, per webhook subscription.

    Reminder n of a firing falls due ``n * repeat_interval`` seconds after it fired, and
    its idempotency key is the firing's with ``:repeat:<n>``: whoever sends it, it is
    one reminder, and a receiver can tell it from the firing itself.
    """
    for sub in subscriptions:
        interval = sub.repeat_interval
        if interval <= 0 or not isinstance(sub.channel, WebhookChannel):
            continue
        for entry in entries:
            alert, key = entry["alert"], entry.get("idempotency_key")
            if alert["state"] != "firing" or key is None or not sub.wants(alert["labels"], "firing"):
                continue
            round_ = int((now - entry["fired_at"]) // interval)
            if round_ < 1:
                continue
            reminder = f"{key}:repeat:{round_}"
            document = {
                "status": "firing",
                "idempotency_key": reminder,
                "alert": alert,
                "provenance": {
                    "events": entry["provenance"],
                    "cause_ids": alert["cause_ids"],
                    "rule_version": alert["rule_version"],
                    "reminder": round_,
                },
                "evaluated_at": now,
            }
            yield Reminder(sub, reminder, document)
