"""Re-evaluate alert rules for the fold groups a batch touched, and publish the transitions.

Each group keeps one ``groups`` table entry: the keys of its series and its
last evaluation. A transition is sent to the alerts topic (and acknowledged)
before the entry is written, so a crash in between re-sends it on replay
(same idempotency key) and never loses it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from tracker.core.alerts import Alert, Transition, evaluate, transitions
from tracker.core.fold import SeriesValue
from tracker.core.routing import Router
from tracker.core.rules import RuleSet
from tracker.worker.metrics import PipelineMetrics

__all__ = ["Alerting", "Provenance", "group_key", "transition_document"]

GROUP_SUFFIX = "/group"
Send = Callable[[bytes, bytes], Any]


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
        send: Send,
        metrics: PipelineMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules
        self.router = router
        self.series = series
        self.groups = groups
        self.send = send
        self.metrics = metrics
        self.clock = clock

    async def update(self, touched: Mapping[str, list[Provenance]], new_keys: Mapping[str, set[str]]) -> None:
        """Re-evaluate each touched fold group; ``new_keys`` are series keys the batch wrote."""
        for fold_key, provenance in touched.items():
            key = group_key(fold_key)
            stored = self.groups.get(key) or {"series": [], "alerts": {}}
            series_keys = sorted(set(stored["series"]) | new_keys.get(fold_key, set()))
            state = {name: self.series[name] for name in series_keys if self.series.get(name) is not None}
            before = {fingerprint: Alert.from_json(entry["alert"]) for fingerprint, entry in stored["alerts"].items()}
            # Only the parts of the group this batch wrote are re-evaluated, unless the
            # rules changed since the stored evaluation.
            incremental = stored.get("rules_version") == self.rules.version
            changed = new_keys.get(fold_key, set()) if incremental else None
            after = evaluate(self.rules, self.router, state, changed, before) if self.rules.rules else {}
            now = self.clock()
            kept: dict[str, Any] = {}
            changes = transitions(before, after)
            fired: dict[str, str] = {}
            documents = [transition_document(transition, provenance, now) for transition in changes]
            # Sent together, acknowledged together, before the group entry is written.
            await asyncio.gather(
                *(self.send(d["alert"]["fingerprint"].encode(), json.dumps(d).encode()) for d in documents)
            )
            for transition, document in zip(changes, documents, strict=True):
                self.metrics.transitions.labels(rule=transition.alert.rule, state=transition.status).inc()
                if transition.status == "firing":
                    fired[transition.alert.fingerprint] = document["idempotency_key"]
            changed = {t.alert.fingerprint for t in changes}
            for fingerprint, alert in after.items():
                previous = stored["alerts"].get(fingerprint)
                if fingerprint in changed or previous is None:
                    # fired_at and the firing key let reminders (repeat_interval) name themselves.
                    entry = {"provenance": [item.to_json() for item in provenance], "fired_at": now}
                    entry["idempotency_key"] = fired.get(fingerprint)
                else:
                    entry = {k: previous.get(k) for k in ("provenance", "fired_at", "idempotency_key")}
                kept[fingerprint] = {"alert": alert.to_json(), **entry}
            value = {"series": series_keys, "alerts": kept, "rules_version": self.rules.version}
            if value != stored:
                self.groups[key] = value
