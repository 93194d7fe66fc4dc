"""Evaluate alert rules over one fold group's state, and diff two evaluations into transitions.

``evaluate`` is pure: the same live facts give the same alerts, whatever the
order they arrived in. The worker keeps the last evaluation of each group in
a table; a transition is published only when a new evaluation differs, so a
replay or a re-published fact sends nothing new.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tracker.core.dates import PartialDate, months_between
from tracker.core.fold import SeriesValue, live_facts
from tracker.core.routing import INVESTMENT_METRIC, Router, split_table_key
from tracker.core.rules import (
    EVENT_FIELDS,
    SIGNAL_KINDS,
    EventCondition,
    GrowthCondition,
    PeerCondition,
    Rule,
    RuleSet,
    ThresholdCondition,
    render_template,
)
from tracker.core.signals import derive_signals

__all__ = ["Alert", "Transition", "evaluate", "transitions"]

_KIND_OF_TYPE = {
    "export_rule.changed": "export",
    "chip_delivery.reported": "chip",
    "usage.reported": "usage",
    "investment.announced": "investment",
}


@functools.lru_cache(maxsize=65536)
def _date(text: str) -> PartialDate:
    return PartialDate.parse(text)


@dataclass(frozen=True)
class Alert:
    """An active alert: pending or firing, since an event date, caused by some facts."""

    fingerprint: str
    rule: str
    severity: str
    state: Literal["pending", "firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    since: str
    value: float | None
    cause_ids: tuple[str, ...]
    rule_version: str

    def to_json(self) -> dict[str, Any]:
        """Return the alert as plain JSON data."""
        data = asdict(self)
        data["cause_ids"] = list(self.cause_ids)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        """Rebuild an alert from ``to_json`` data."""
        return cls(**{**data, "cause_ids": tuple(data["cause_ids"])})


@dataclass(frozen=True)
class Transition:
    """An alert that started firing, or stopped."""

    status: Literal["firing", "resolved"]
    alert: Alert


def fingerprint(labels: Mapping[str, str]) -> str:
    """Return the identity of an alert: a digest of its sorted labels."""
    return hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]


@dataclass
class _Machine:
    """The state machine of one alert along event time."""

    state: Literal["inactive", "pending", "firing"] = "inactive"
    start: PartialDate | None = None
    value: float | None = None
    history: list[tuple[PartialDate, float | None]] = field(default_factory=list)

    def step(self, date: PartialDate, value: float | None, rule: Rule) -> None:
        bounds = rule.condition
        assert not isinstance(bounds, EventCondition)
        self.value = value
        if self.state == "firing":
            if value is None or bounds.resolves(value):
                self.state, self.start = "inactive", None
            return
        if value is not None and bounds.fires(value):
            if self.start is None:
                self.start = date
            held = months_between(self.start, date)
            self.state = "firing" if held >= bounds.for_months else "pending"
        else:
            self.state, self.start = "inactive", None


def _selector(rule: Rule) -> tuple[str, dict[str, str]]:
    condition = rule.condition
    if isinstance(condition, PeerCondition):
        return "market_peer_ratio", {
            "entity": condition.entity,
            "peer": condition.peer,
            "metric": condition.metric,
        }
    if isinstance(condition, GrowthCondition):
        return condition.signal, dict(condition.match)
    assert isinstance(condition, ThresholdCondition)
    return condition.signal, dict(condition.match)


def _relevant(name: str, labels: Mapping[str, str], key_labels: tuple[str, ...], kind: str) -> bool:
    kinds = SIGNAL_KINDS[name]
    if name == "market_peer_ratio":
        kinds = frozenset({"investment" if labels.get("metric") == INVESTMENT_METRIC else "usage"})
    return kind in kinds and set(key_labels) <= set(labels.values())


def _dated_facts(group: Mapping[str, SeriesValue]) -> list[tuple[PartialDate, str, str, list[Any]]]:
    facts = [
        (_date(payload[1]), event_id, key, payload)
        for key, value in group.items()
        for event_id, payload in live_facts(value)
    ]
    facts.sort(key=lambda item: (item[0].sort_key(), item[1]))
    return facts


def _signal_history(
    router: Router,
    group: Mapping[str, SeriesValue],
    facts: list[tuple[PartialDate, str, str, list[Any]]],
) -> list[tuple[PartialDate, dict[tuple[str, tuple[tuple[str, str], ...]], float]]]:
    """Return, for each distinct event date, every signal of the group as of that date."""
    history = []
    prefix: dict[str, SeriesValue] = {key: {"facts": {}, "retracted": {}} for key in group}
    index = 0
    while index < len(facts):
        date = facts[index][0]
        while index < len(facts) and facts[index][0].sort_key() == date.sort_key():
            _, event_id, key, payload = facts[index]
            prefix[key]["facts"][event_id] = payload
            index += 1
        signals = derive_signals(router, prefix)
        history.append((date, {(s.name, s.labels): s.value for s in signals}))
    return history


def _make_alert(
    rule: Rule,
    labels: dict[str, str],
    state: Literal["pending", "firing", "resolved"],
    since: PartialDate,
    value: float | None,
    causes: Iterable[str],
) -> Alert:
    full = {"alertname": rule.name, "severity": rule.severity, **rule.labels, **labels}
    annotations = {name: render_template(text, full, value) for name, text in rule.annotations.items()}
    return Alert(
        fingerprint(full),
        rule.name,
        rule.severity,
        state,
        full,
        annotations,
        str(since),
        value,
        tuple(sorted(set(causes))),
        rule.version,
    )


def _event_alerts(rule: Rule, condition: EventCondition, group: Mapping[str, SeriesValue]) -> list[Alert]:
    kind = _KIND_OF_TYPE[condition.type]
    alerts = []
    for key, value in group.items():
        _, series = split_table_key(key)
        if series.kind != kind:
            continue
        for event_id, payload in live_facts(value):
            fields = dict(zip(EVENT_FIELDS[condition.type], series.labels, strict=False))
            if kind == "export":
                fields["direction"] = "loosened" if payload[3] > 0 else "tightened"
            elif kind == "chip":
                fields["stage"] = payload[2]
            if not rule.matches(fields, condition.match):
                continue
            date = _date(payload[2] if kind == "export" else payload[1])
            alerts.append(_make_alert(rule, {**fields, "event_id": event_id}, "firing", date, None, [event_id]))
    return alerts


def evaluate(rules: RuleSet, router: Router, group: Mapping[str, SeriesValue]) -> dict[str, Alert]:
    """Return the pending and firing alerts of one fold group, by fingerprint."""
    group = {key: value for key, value in group.items() if not key.startswith("#")}
    alerts: list[Alert] = []
    signal_rules = [rule for rule in rules.rules if not isinstance(rule.condition, EventCondition)]
    facts = _dated_facts(group) if signal_rules else []
    history = _signal_history(router, group, facts) if signal_rules else []
    for rule in rules.rules:
        condition = rule.condition
        if isinstance(condition, EventCondition):
            alerts.extend(_event_alerts(rule, condition, group))
            continue
        name, match = _selector(rule)
        machines: dict[tuple[tuple[str, str], ...], _Machine] = {}
        for date, signals in history:
            for (signal_name, labels), _ in signals.items():
                if signal_name == name and labels not in machines and rule.matches(dict(labels), match):
                    machines[labels] = _Machine()
            for labels, machine in machines.items():
                machine.step(date, signals.get((name, labels)), rule)
        for labels, machine in machines.items():
            if machine.state != "inactive" and machine.start is not None:
                label_map = dict(labels)
                causes = [
                    event_id
                    for date, event_id, key, _ in facts
                    if date.sort_key() == machine.start.sort_key()
                    and _relevant(
                        name,
                        label_map,
                        split_table_key(key)[1].labels,
                        split_table_key(key)[1].kind,
                    )
                ]
                alerts.append(_make_alert(rule, label_map, machine.state, machine.start, machine.value, causes))
    return {alert.fingerprint: alert for alert in alerts}


def transitions(before: Mapping[str, Alert], after: Mapping[str, Alert]) -> list[Transition]:
    """Return what changed between two evaluations: alerts that started or stopped firing."""
    out = []
    for key, alert in sorted(after.items()):
        previous = before.get(key)
        if alert.state == "firing" and (previous is None or previous.state != "firing"):
            out.append(Transition("firing", alert))
    for key, previous in sorted(before.items()):
        current = after.get(key)
        if previous.state == "firing" and (current is None or current.state != "firing"):
            resolved = Alert(**{**previous.to_json(), "state": "resolved", "cause_ids": previous.cause_ids})
            out.append(Transition("resolved", resolved))
    return out
