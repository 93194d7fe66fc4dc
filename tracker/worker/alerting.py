"""Re-evaluate alert rules for the fold groups a batch touched, and publish the transitions.

A group with alerts keeps one ``groups`` table entry: its last evaluation.
A transition is sent to the alerts topic (and acknowledged) before the entry
is written, so a crash in between re-sends it on replay (same idempotency
key) and never loses it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from tracker.core.alerts import Alert, Transition, evaluate, transitions
from tracker.core.fold import SeriesValue
from tracker.core.routing import Router
from tracker.core.rules import RuleSet
from tracker.worker.metrics import PipelineMetrics

__all__ = ["Alerting", "Provenance", "group_key", "transition_document"]

GROUP_SUFFIX = "/group"

#: Records kept as an alert's provenance when none of its causes was in the batch that changed it.
PROVENANCE_FALLBACK = 5
#: Send (key, value) records to the alerts topic and wait for the broker's acknowledgement.
Send = Callable[[list[tuple[bytes, bytes]]], Awaitable[None]]


def group_key(fold_key: str) -> str:
    """Return the groups-table key of a fold group (same partition as its series)."""
    return f"{fold_key}{GROUP_SUFFIX}"


@dataclass(frozen=True)
class Provenance:
    """Where a folded record came from."""

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
    """Return the alerts-topic record of a transition."""
    alert = transition.alert
    # The key names the transition, not its delivery: the same live facts give the
    # same key on any replay, and a fact re-published under a new id gives a new one.
    cause = hashlib.sha256(json.dumps([alert.since, list(alert.cause_ids)]).encode()).hexdigest()[:12]
    return {
        "status": transition.status,
        "idempotency_key": f"{alert.fingerprint}:{transition.status}:{cause}",
        "alert": alert.to_json(),
        "provenance": {
            "events": [item.to_json() for item in provenance],
            "cause_ids": list(alert.cause_ids),
            "rule_version": alert.rule_version,
        },
        "evaluated_at": at,
    }


class Alerting:
    """Evaluate touched groups after each batch; publish transitions; keep the groups table."""

    def __init__(
        self,
        rules: RuleSet,
        router: Router,
        series: Mapping[str, SeriesValue],
        groups: MutableMapping[str, Any],
        members: Callable[[str], set[str]],
        send: Send,
        metrics: PipelineMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules
        self.router = router
        self.series = series
        self.groups = groups
        self.members = members
        self.send = send
        self.metrics = metrics
        self.clock = clock
        # Groups evaluated whole under these rules since the partitions were assigned: a group
        # with nothing firing or pending has no entry, yet needs only its changed parts re-evaluated.
        self._evaluated: set[str] = set()

    def reset(self) -> None:
        """Forget which groups were evaluated (partitions were assigned)."""
        self._evaluated.clear()

    async def update(self, touched: Mapping[str, list[Provenance]], new_keys: Mapping[str, set[str]]) -> None:
        """Re-evaluate each touched fold group; ``new_keys`` are the series keys the batch wrote."""
        now = self.clock()
        documents: list[dict[str, Any]] = []
        writes: dict[str, dict[str, Any]] = {}
        for fold_key, provenance in touched.items():
            key = group_key(fold_key)
            stored = self.groups.get(key)
            state = _Members(self.series, self.members(fold_key))
            before = {fp: Alert.from_json(entry["alert"]) for fp, entry in (stored or {}).get("alerts", {}).items()}
            # Only the parts of the group this batch wrote are re-evaluated, unless the rules
            # changed since the stored evaluation (or nothing was stored: then all of it).
            incremental = fold_key in self._evaluated or (
                stored is not None and stored.get("rules_version") == self.rules.version
            )
            changed = new_keys.get(fold_key, set()) if incremental else None
            after = evaluate(self.rules, self.router, state, changed, before) if self.rules.rules else {}
            changes = transitions(before, after)
            group_documents = [transition_document(transition, provenance, now) for transition in changes]
            documents.extend(group_documents)
            self._evaluated.add(fold_key)
            value = self._entry(stored, after, group_documents, provenance, now)
            if value != stored and (stored is not None or value["alerts"]):
                writes[key] = value
        # Sent together and acknowledged before any group entry is written: a crash in
        # between re-sends them on replay (same idempotency keys) instead of losing them.
        if documents:
            await self.send([(d["alert"]["fingerprint"].encode(), orjson.dumps(d)) for d in documents])
        for document in documents:
            self.metrics.transitions.labels(rule=document["alert"]["rule"], state=document["status"]).inc()
        for key, value in writes.items():
            self.groups[key] = value

    def _entry(
        self,
        stored: Mapping[str, Any] | None,
        after: Mapping[str, Alert],
        documents: list[dict[str, Any]],
        provenance: list[Provenance],
        now: float,
    ) -> dict[str, Any]:
        fired = {d["alert"]["fingerprint"]: d["idempotency_key"] for d in documents if d["status"] == "firing"}
        changed = {d["alert"]["fingerprint"] for d in documents}
        kept: dict[str, Any] = {}
        for fingerprint, alert in after.items():
            previous = (stored or {}).get("alerts", {}).get(fingerprint)
            if fingerprint in changed or previous is None:
                # The records of this batch that caused the alert, or (when its causes came
                # earlier) the first few of the group's records: an entry per alert stays small
                # however busy the group is.
                causes = [item for item in provenance if item.event_id in alert.cause_ids]
                causes = causes or provenance[:PROVENANCE_FALLBACK]
                # fired_at and the firing key let reminders (repeat_interval) name themselves.
                entry = {
                    "provenance": [item.to_json() for item in causes],
                    "fired_at": now,
                    "idempotency_key": fired.get(fingerprint),
                }
            else:
                entry = {name: previous.get(name) for name in ("provenance", "fired_at", "idempotency_key")}
            kept[fingerprint] = {"alert": alert.to_json(), **entry}
        return {"alerts": kept, "rules_version": self.rules.version}


class _Members(Mapping[str, SeriesValue]):
    """A fold group's series, read from the table (and decoded) only when evaluation asks."""

    def __init__(self, series: Mapping[str, SeriesValue], keys: Iterable[str]) -> None:
        self._series = series
        self._keys = [key for key in keys if key in series]
        self._read: dict[str, SeriesValue] = {}

    def __getitem__(self, key: str) -> SeriesValue:
        value = self._read.get(key)
        if value is None:
            value = self._read[key] = self._series[key]
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)
