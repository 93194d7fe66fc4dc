"""Evaluate alert rules over one fold group's state, and diff two evaluations into transitions.

``evaluate`` is pure: the same live facts give the same alerts, whatever the
order they arrived in. The worker keeps the last evaluation of each group in
a table; a transition is published only when a new evaluation differs, so a
replay or a re-published fact sends nothing new.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quoted
from typing import Any, Literal, NamedTuple

from tracker.core.catalogue import SIGNAL_LABELS
from tracker.core.dates import PartialDate
from tracker.core.fold import SeriesValue, live_facts
from tracker.core.fx import Rates, is_rates_key
from tracker.core.routing import INVESTMENT_METRIC, Router, SeriesId, split_table_key
from tracker.core.rules import (
    EVENT_FIELDS,
    EVENT_KINDS,
    EventCondition,
    PeerCondition,
    Rule,
    RuleSet,
    render_template,
)
from tracker.core.signal_walk import GROUP_WIDE, active_states, ending

__all__ = ["MAX_CAUSE_IDS", "Alert", "Transition", "evaluate", "fingerprint", "resolution", "transitions"]


#: Cause ids an alert lists (the first in sorted order); ``cause_count`` says how many there are.
#: Many facts of one date can start an alert together: its record stays small however many.
MAX_CAUSE_IDS = 20


@functools.lru_cache(maxsize=65536)
def _date(text: str) -> PartialDate:
    return PartialDate.parse(text)


class Alert(NamedTuple):
    """An active alert: pending or firing, since an event date, caused by some facts.

    A tuple: evaluation builds one per firing unit, batch after batch.
    """

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
    unit: str = ""
    #: How many facts caused the alert; ``cause_ids`` lists at most MAX_CAUSE_IDS of them.
    #: 0 in entries written before the count existed: there, every cause is listed.
    cause_count: int = 0
    #: A resolved alert's event date at which its condition stopped holding (``endsAt``); "" while active.
    until: str = ""

    @property
    def causes_listed(self) -> bool:
        """Return whether ``cause_ids`` lists every cause."""
        return self.cause_count <= len(self.cause_ids)

    def to_json(self) -> dict[str, Any]:
        """Return the alert as plain JSON data."""
        data = self._asdict()
        data.update(labels=dict(self.labels), annotations=dict(self.annotations), cause_ids=list(self.cause_ids))
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
    """Return the identity of an alert: a digest of its sorted labels.

    The digested text is ``json.dumps`` of the sorted (name, value) pairs, written
    out with the JSON encoder's own string escaping (json.dumps itself took half of
    building an alert).
    """
    text = "[" + ", ".join(f"[{_quoted(name)}, {_quoted(value)}]" for name, value in sorted(labels.items())) + "]"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _kind(key: str) -> str:
    """Return the series kind of a table key (``<fold key>/<kind>:<labels>``) without parsing it whole."""
    return key.partition("/")[2].partition(":")[0]


def _units(
    rule: Rule, router: Router, group: Mapping[str, SeriesValue], fold_key: str, keys: Mapping[str, list[str]]
) -> dict[str, tuple[str, ...]]:
    """Split the series a rule reads into its parts: a series, a peer pair, a whole group.

    ``keys`` are the group's series keys worth evaluating, by kind (all of them, or
    those a batch changed): a part that reads one series is found among them alone; a
    peer pair and a group-wide family are read whole from ``group`` whenever one of
    their series is among ``keys``.
    """
    condition = rule.condition
    if all(kind not in keys for kind in rule.kinds):
        return {}
    if isinstance(condition, PeerCondition):
        if router.fold_key(condition.entity) != fold_key:
            return {}
        kind = "investment" if condition.metric == INVESTMENT_METRIC else "usage"
        wanted = {
            router.table_key(SeriesId(kind, (entity,) if kind == "investment" else (entity, condition.metric)))
            for entity in (condition.entity, condition.peer)
        }
        pair = tuple(sorted(key for key in wanted if key in group))
        return {"+".join(pair): pair} if pair and not wanted.isdisjoint(keys[kind]) else {}
    if not isinstance(condition, EventCondition) and rule.selector[0] in GROUP_WIDE:
        whole = tuple(sorted(key for key in group if _kind(key) in rule.kinds))
        return {"+".join(whole): whole} if whole else {}
    return {key: (key,) for kind in rule.kinds for key in keys.get(kind, ())}


def _make_alert(
    rule: Rule,
    labels: dict[str, str],
    state: Literal["pending", "firing", "resolved"],
    since: PartialDate,
    value: float | None,
    causes: Iterable[str],
    unit: str,
) -> Alert:
    full = {"alertname": rule.name, "severity": rule.severity, **rule.labels, **labels}
    annotations = _annotations(rule.annotations, full, value)
    ids = sorted(set(causes))
    return Alert(
        fingerprint(full),
        rule.name,
        rule.severity,
        state,
        full,
        annotations,
        str(since),
        value,
        tuple(ids[:MAX_CAUSE_IDS]),
        rule.version,
        unit,
        len(ids),
    )


def _annotations(templates: Mapping[str, str], labels: Mapping[str, str], value: float | None) -> dict[str, str]:
    return {name: render_template(text, labels, value) for name, text in templates.items()}


def resolution(rules: RuleSet, router: Router, group: Mapping[str, SeriesValue], alert: Alert) -> Alert:
    """Return ``alert`` resolved as the live facts of ``group`` describe it, in event time.

    ``until`` is the event date from which its condition has not held (never before the
    alert's ``since``), ``value`` the signal's value then, and the annotations are the
    rule's ``resolved_annotations`` (else ``annotations``) filled with that value. An event
    alert (its fact retracted), or one whose rule or signal is gone, ends at its ``since``.
    """
    ended = alert._replace(state="resolved", until=alert.since)
    rule = next((rule for rule in rules.rules if rule.name == alert.rule), None)
    if rule is None:
        return ended
    templates = rule.resolved_annotations or rule.annotations
    found = _ending(rule, router, group, alert) if not isinstance(rule.condition, EventCondition) else None
    until, value = found if found is not None else (alert.since, None)
    return ended._replace(until=until, value=value, annotations=_annotations(templates, alert.labels, value))


def _ending(
    rule: Rule, router: Router, group: Mapping[str, SeriesValue], alert: Alert
) -> tuple[str, float | None] | None:
    """Return the date from which a signal alert's condition has not held, and the value then."""
    keys = [key for key in alert.unit.partition("|")[2].split("+") if key in group]
    if not keys:
        return None
    state = {key: group[key] for key in keys}
    money = any(_kind(key) in ("investment", "chip") for key in keys)
    rates = Rates.from_state({key: group[key] for key in group if is_rates_key(key)}) if money else Rates()
    own = {label: value for label, value in alert.labels.items() if label in SIGNAL_LABELS[rule.selector[0]]}
    return ending(rule, router, state, rates, own, alert.since)


def _event_alerts(rule: Rule, condition: EventCondition, group: Mapping[str, SeriesValue], unit: str) -> list[Alert]:
    kind = EVENT_KINDS[condition.type]
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
            alerts.append(_make_alert(rule, {**fields, "event_id": event_id}, "firing", date, None, [event_id], unit))
    return alerts


def evaluate_units(
    rules: RuleSet,
    router: Router,
    group: Mapping[str, SeriesValue],
    changed: set[str] | None = None,
) -> dict[str, list[Alert]]:
    """Evaluate the parts of one fold group that read a ``changed`` series key (every part if None).

    Returns the pending and firing alerts of each part evaluated, by unit (an empty
    list for a part with none). Values are read only for the parts evaluated, so
    ``group`` may decode them on demand. ``group`` may hold its partition's rates
    keys: money is converted to USD with them.
    """
    keys: dict[str, list[str]] = {}
    for key in group if changed is None else changed:
        if not key.startswith("#") and key in group:
            keys.setdefault(_kind(key), []).append(key)
    if not keys:
        return {}
    fold_key = next(iter(keys.values()))[0].partition("/")[0]
    # Only money needs the rates: read them (decoded on demand) for investments and chips alone.
    money = "investment" in keys or "chip" in keys
    rates = Rates.from_state({key: group[key] for key in group if is_rates_key(key)}) if money else Rates()
    evaluated: dict[str, list[Alert]] = {}
    for rule in rules.rules:
        for part, unit_keys in _units(rule, router, group, fold_key, keys).items():
            state = {key: group[key] for key in unit_keys}
            unit = f"{rule.name}|{part}"
            if isinstance(rule.condition, EventCondition):
                evaluated[unit] = _event_alerts(rule, rule.condition, state, unit)
            else:
                evaluated[unit] = [
                    _make_alert(rule, dict(found.labels), found.state, found.start, found.value, found.causes, unit)
                    for found in active_states(rule, router, state, rates)
                ]
    return evaluated


def evaluate(
    rules: RuleSet,
    router: Router,
    group: Mapping[str, SeriesValue],
    changed: set[str] | None = None,
    previous: Mapping[str, Alert] | None = None,
) -> dict[str, Alert]:
    """Return the pending and firing alerts of one fold group, by fingerprint.

    With ``changed`` (series keys written since ``previous`` was evaluated under the
    same rules), parts of the group that read none of them keep their previous
    alerts: the result is the same as a full evaluation, only cheaper.
    """
    incremental = changed is not None and previous is not None
    evaluated = evaluate_units(rules, router, group, changed if incremental else None)
    alerts = [alert for unit_alerts in evaluated.values() for alert in unit_alerts]
    if incremental:
        alerts.extend(alert for alert in (previous or {}).values() if alert.unit not in evaluated)
    return {alert.fingerprint: alert for alert in alerts}


def transitions(
    before: Mapping[str, Alert], after: Mapping[str, Alert], resolve: Callable[[Alert], Alert] | None = None
) -> list[Transition]:
    """Return what changed between two evaluations: alerts that started or stopped firing.

    ``resolve`` describes a resolved alert as of its resolution (``resolution`` over the
    group evaluated); without it, a resolved alert keeps what it said when it fired.
    """
    out = []
    for key, alert in sorted(after.items()):
        previous = before.get(key)
        if alert.state == "firing" and (previous is None or previous.state != "firing"):
            out.append(Transition("firing", alert))
    for key, previous in sorted(before.items()):
        current = after.get(key)
        if previous.state == "firing" and (current is None or current.state != "firing"):
            resolved = resolve(previous) if resolve else previous._replace(state="resolved", until=previous.since)
            out.append(Transition("resolved", resolved))
    return out
