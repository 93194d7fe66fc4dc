"""A signal rule along event time: its state machine, walked back from a unit's newest point.

A unit (one series, a peer pair, a whole fold group) shows a rule's signal at
each distinct date of its facts. An alert is the rule's state machine run over
those points: pending once the condition holds, firing once it has held for
``for_months``, inactive once it resolves. ``active_states`` finds the labels
pending or firing at the newest point; ``ending`` where a resolved one stopped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from tracker.core.catalogue import Signal
from tracker.core.dates import PartialDate, months_between
from tracker.core.fold import SeriesValue, live_facts
from tracker.core.fx import Rates
from tracker.core.routing import Router
from tracker.core.rules import EventCondition, Rule
from tracker.core.series_kinds import series_history
from tracker.core.signals import derive_signals

__all__ = ["GROUP_WIDE", "Active", "Labels", "active_states", "ending"]

#: Signal families computed over a whole fold group: a rule on one reads the group as one unit.
GROUP_WIDE = ("market_events_trailing", "market_peer_ratio")

Labels = tuple[tuple[str, str], ...]


class Active(NamedTuple):
    """The labels of a signal that a rule holds pending or firing at a unit's newest point, and why."""

    labels: Labels
    state: Literal["pending", "firing"]
    start: PartialDate
    value: float | None
    causes: list[str]


@dataclass
class _Machine:
    """The state machine of one alert along event time."""

    state: Literal["inactive", "pending", "firing"] = "inactive"
    start: PartialDate | None = None
    value: float | None = None

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


def _dated_facts(group: Mapping[str, SeriesValue]) -> list[tuple[PartialDate, str, str, list[Any]]]:
    facts = [
        (PartialDate.parse(payload[1]), event_id, key, payload)
        for key, value in group.items()
        for event_id, payload in live_facts(value)
    ]
    facts.sort(key=lambda item: (item[0].sort_key(), item[1]))
    return facts


def _group_history(
    router: Router, state: Mapping[str, SeriesValue], name: str, rates: Rates
) -> Iterator[tuple[PartialDate, list[Signal]]]:
    """Yield a group-wide family's signals at each distinct date of the unit's facts, newest first."""
    trailing, peers = name == "market_events_trailing", name == "market_peer_ratio"
    facts = _dated_facts(state)
    for index in range(len(facts) - 1, -1, -1):
        date = facts[index][0]
        if index + 1 < len(facts) and facts[index + 1][0].sort_key() == date.sort_key():
            continue  # not the last fact of its date
        prefix: dict[str, SeriesValue] = {key: {"facts": {}, "retracted": {}} for key in state}
        for _, event_id, key, payload in facts[: index + 1]:
            prefix[key]["facts"][event_id] = payload
        yield date, derive_signals(router, prefix, trailing=trailing, peers=peers, rates=rates)


def _points(
    rule: Rule, router: Router, state: Mapping[str, SeriesValue], rates: Rates
) -> Iterator[tuple[PartialDate, dict[Labels, float]]]:
    """Yield the values of a signal rule's signal at each distinct date of its unit's facts, newest first."""
    name, match = rule.selector
    if name in GROUP_WIDE:
        history = _group_history(router, state, name, rates)
    else:
        ((key, series),) = state.items()  # a signal rule on one series family reads one series
        history = series_history(key, series, rates)
    for date, signals in history:
        wanted = [s for s in signals if s.name == name]
        if match:
            wanted = [s for s in wanted if rule.matches(dict(s.labels), match)]
        yield date, {s.labels: s.value for s in wanted}


def active_states(rule: Rule, router: Router, state: Mapping[str, SeriesValue], rates: Rates) -> list[Active]:
    """Return the labels a signal rule holds pending or firing on one unit, walking its history back.

    The walk stops at the first point that resolves (or has no value): the state
    machine is inactive there whatever came before, so replaying forward from that
    point gives exactly what a replay of the whole history gives. Most units do not
    fire now, and their walk ends at the newest point: older points are derived only
    for the others.
    """
    bounds = rule.condition
    assert not isinstance(bounds, EventCondition)
    history = _points(rule, router, state, rates)
    points: list[tuple[PartialDate, dict[Labels, float]]] = []

    def at(index: int) -> tuple[PartialDate, dict[Labels, float]] | None:
        while len(points) <= index:
            found = next(history, None)
            if found is None:
                return None
            points.append(found)
        return points[index]

    dated_ids: dict[tuple[float, int], list[str]] | None = None
    newest = at(0)
    walking = sorted(labels for labels, figure in (newest[1] if newest else {}).items() if not bounds.resolves(figure))
    found = []
    for labels in walking:
        suffix: list[tuple[PartialDate, float]] = []
        index = 0
        while (point := at(index)) is not None:
            figure = point[1].get(labels)
            if figure is None or bounds.resolves(figure):
                break
            suffix.append((point[0], figure))
            index += 1
        machine = _Machine()
        for date, figure in reversed(suffix):
            machine.step(date, figure, rule)
        if machine.state != "inactive" and machine.start is not None:
            start = machine.start.sort_key()
            if dated_ids is None:  # once per unit, however many of its labels fire
                dated_ids = _ids_by_date(state)
            found.append(Active(labels, machine.state, machine.start, machine.value, dated_ids.get(start, [])))
    return found


def _ids_by_date(state: Mapping[str, SeriesValue]) -> dict[tuple[float, int], list[str]]:
    """Return the ids of a unit's live facts by the sort key of their date: an alert's causes are those of its start."""
    ids: dict[tuple[float, int], list[str]] = {}
    for series in state.values():
        for event_id, payload in live_facts(series):
            ids.setdefault(PartialDate.parse(payload[1]).sort_key(), []).append(event_id)
    return ids


def ending(
    rule: Rule, router: Router, state: Mapping[str, SeriesValue], rates: Rates, own: Mapping[str, str], since: str
) -> tuple[str, float | None]:
    """Return the date from which the labels ``own`` have not held the rule since ``since``, and the value then."""
    points = list(reversed(list(_points(rule, router, state, rates))))
    figures = [next((figure for labels, figure in values.items() if dict(labels) == own), None) for _, values in points]
    machine, last_firing = _Machine(), -1
    for index, ((date, _), figure) in enumerate(zip(points, figures, strict=True)):
        machine.step(date, figure, rule)
        if machine.state == "firing":
            last_firing = index
    began = PartialDate.parse(since).sort_key()
    end = next((index for index, (date, _) in enumerate(points) if date.sort_key() >= began), len(points))
    end = max(end, last_firing + 1)
    if end < len(points):
        return str(points[end][0]), figures[end]
    return since, figures[-1] if figures else None  # nothing known since: the value in effect then
