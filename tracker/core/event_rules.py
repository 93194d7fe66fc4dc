"""Match event rules to facts: one alert per live fact that matches, fact by fact.

An event rule's alert is a function of one fact (its series' labels, its
payload, its id), unlike a signal rule's, which reads a history. So after a
batch only the facts the batch revised need matching again, and only their
alerts need comparing with what is stored: the cost follows the batch, not
the number of facts the series already holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from tracker.core.alert_model import Alert, event_date, make_alert
from tracker.core.fold import SeriesValue, live_facts
from tracker.core.routing import SeriesId, split_table_key
from tracker.core.rules import EVENT_FIELDS, EVENT_KINDS, EventCondition, Rule, RuleSet

__all__ = ["Revised", "Revision", "event_alerts", "fact_alert", "revise_event_units"]

#: Per series key, each fact a batch revised with its payload as it was live before (``FoldBatch.revised``).
Revised = Mapping[str, Mapping[str, list[Any] | None]]


class Revision(NamedTuple):
    """What a batch changed in one event-rule unit (one rule on one series)."""

    #: Every fingerprint the revised facts had before the batch or have now: the alerts to compare.
    fingerprints: frozenset[str]
    #: The alerts of the revised facts now, by fingerprint.
    after: dict[str, Alert]


def fact_alert(rule: Rule, series: SeriesId, event_id: str, payload: list[Any], unit: str) -> Alert | None:
    """Return the alert an event rule raises for one live fact of ``series``, or None if it does not match."""
    condition = rule.condition
    assert isinstance(condition, EventCondition)
    kind = series.kind
    fields = dict(zip(EVENT_FIELDS[condition.type], series.labels, strict=False))
    if kind == "export":
        fields["direction"] = "loosened" if payload[3] > 0 else "tightened"
    elif kind == "chip":
        fields["stage"] = payload[2]
    if not rule.matches(fields, condition.match):
        return None
    date = event_date(payload[2] if kind == "export" else payload[1])
    return make_alert(rule, {**fields, "event_id": event_id}, "firing", date, None, [event_id], unit)


def event_alerts(rule: Rule, group: Mapping[str, SeriesValue], unit: str) -> list[Alert]:
    """Return the alerts of an event rule over every live fact of ``group``."""
    condition = rule.condition
    assert isinstance(condition, EventCondition)
    kind = EVENT_KINDS[condition.type]
    alerts = []
    for key, value in group.items():
        _, series = split_table_key(key)
        if series.kind != kind:
            continue
        for event_id, payload in live_facts(value):
            if (alert := fact_alert(rule, series, event_id, payload, unit)) is not None:
                alerts.append(alert)
    return alerts


def revise_event_units(rules: RuleSet, group: Mapping[str, SeriesValue], revised: Revised) -> dict[str, Revision]:
    """Match the event rules to the facts a batch revised in ``group``, by unit.

    ``revised`` gives each fact's payload as it was live before the batch (None if it
    was not); its payload now is read from ``group``. A unit whose revised facts gave
    and give no alert is left out. Stored alerts of the other facts stay as they are:
    together, exactly what ``event_alerts`` over the whole group gives.
    """
    out: dict[str, Revision] = {}
    by_kind = rules.event_rules
    for key, facts in revised.items():
        # Most revised keys are of kinds no event rule reads: the kind is read off the key's text.
        matching = by_kind.get(key.partition("/")[2].partition(":")[0])
        if not matching or key not in group:
            continue
        _, series = split_table_key(key)
        value: SeriesValue | None = None
        for rule in matching:
            value = value or group[key]
            unit = f"{rule.name}|{key}"
            fingerprints: set[str] = set()
            after: dict[str, Alert] = {}
            for event_id, before in facts.items():
                if before is not None and (alert := fact_alert(rule, series, event_id, before, unit)) is not None:
                    fingerprints.add(alert.fingerprint)
                payload = None if event_id in value["retracted"] else value["facts"].get(event_id)
                if payload is not None and (alert := fact_alert(rule, series, event_id, payload, unit)) is not None:
                    fingerprints.add(alert.fingerprint)
                    after[alert.fingerprint] = alert
            if fingerprints:
                out[unit] = Revision(frozenset(fingerprints), after)
    return out
