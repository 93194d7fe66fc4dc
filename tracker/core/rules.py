"""Alert rules: their declarative form and their evaluation on event time.

A rule watches one condition: a threshold on a signal, a peer ratio, a growth
ratio, or a match on the facts themselves. Evaluation replays the signal's
history in event-time order (one point per distinct ``occurred_on`` of the
facts it reads) through a small state machine, so hysteresis and ``for``
work without wall-clock time and an alert's state, its start and its cause
are a function of the set of live events, like every signal.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tracker.core.catalogue import SIGNAL_LABELS
from tracker.core.routing import INVESTMENT_METRIC, PEER_METRICS, PeerPair

__all__ = ["Condition", "Rule", "RuleSet", "render_template"]

Severity = Literal["info", "warning", "critical"]
_LABEL = r"^[a-zA-Z_][a-zA-Z0-9_]*$"

#: The series kinds each signal family is derived from (what a rule's history replays).
SIGNAL_KINDS: dict[str, frozenset[str]] = {
    "market_usage": frozenset({"usage"}),
    "market_usage_growth_monthly_ratio": frozenset({"usage"}),
    "market_signal_observed_timestamp_seconds": frozenset({"usage", "investment"}),
    "market_investment_usd": frozenset({"investment"}),
    "market_investment_usd_per_year": frozenset({"investment"}),
    "market_investment": frozenset({"investment"}),
    "market_investment_growth_ratio": frozenset({"investment"}),
    "market_chip_units": frozenset({"chip"}),
    "market_chip_order_value_usd": frozenset({"chip"}),
    "market_chip_order_value": frozenset({"chip"}),
    "market_export_rule_state": frozenset({"export"}),
    "market_export_rule_changed_timestamp_seconds": frozenset({"export"}),
    "market_peer_ratio": frozenset({"usage", "investment"}),
    "market_events_trailing": frozenset({"usage", "investment", "chip", "export"}),
}


#: The series kind each event type is folded into.
EVENT_KINDS: dict[str, str] = {
    "export_rule.changed": "export",
    "chip_delivery.reported": "chip",
    "usage.reported": "usage",
    "investment.announced": "investment",
}

#: Fields an event rule can match, per event type: where each comes from in a series.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "export_rule.changed": ("authority", "product", "destination", "direction"),
    "chip_delivery.reported": ("buyer", "vendor", "product", "stage"),
    "usage.reported": ("entity", "metric"),
    "investment.announced": ("entity",),
}


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Bounds(_Strict):
    """A firing threshold and its optional resolve threshold (hysteresis)."""

    above: float | None = None
    below: float | None = None
    resolve_below: float | None = None
    resolve_above: float | None = None
    for_months: Annotated[float, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _one_direction(self) -> Bounds:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above or below")
        if self.above is not None:
            if self.resolve_above is not None:
                raise ValueError("a rule that fires above resolves below: use resolve_below")
            if self.resolve_below is not None and self.resolve_below > self.above:
                raise ValueError("resolve_below must not be greater than above")
        if self.below is not None:
            if self.resolve_below is not None:
                raise ValueError("a rule that fires below resolves above: use resolve_above")
            if self.resolve_above is not None and self.resolve_above < self.below:
                raise ValueError("resolve_above must not be less than below")
        return self

    def fires(self, value: float) -> bool:
        """Return whether ``value`` crosses the firing threshold."""
        return value > self.above if self.above is not None else value < self.below  # type: ignore[operator]

    def resolves(self, value: float) -> bool:
        """Return whether ``value`` crosses back over the resolve threshold."""
        if self.resolve_below is not None:
            return value < self.resolve_below
        if self.resolve_above is not None:
            return value > self.resolve_above
        return not self.fires(value)

    def describe(self) -> str:
        """Return the comparison as text, e.g. ``> 1``."""
        return f"> {self.above:g}" if self.above is not None else f"< {self.below:g}"


class ThresholdCondition(Bounds):
    """Fire when a signal crosses a line: ``signal{match} > above``."""

    signal: str
    match: dict[str, str] = Field(default_factory=dict)

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, value: str) -> str:
        if value not in SIGNAL_KINDS:
            raise ValueError(f"unknown signal; expected one of {sorted(SIGNAL_KINDS)}")
        return value


class PeerCondition(Bounds):
    """Fire when ``entity``'s figure divided by ``peer``'s crosses a line."""

    entity: str
    peer: str
    metric: str

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in PEER_METRICS:
            raise ValueError(f"unknown metric; expected one of {sorted(PEER_METRICS)}")
        return value


class GrowthCondition(Bounds):
    """Fire when usage growth per month, or investment growth per period, crosses a line."""

    of: Literal["usage", "investment"]
    match: dict[str, str] = Field(default_factory=dict)

    @property
    def signal(self) -> str:
        """Return the growth signal this condition reads."""
        return "market_usage_growth_monthly_ratio" if self.of == "usage" else "market_investment_growth_ratio"


class EventCondition(_Strict):
    """Fire on each live fact of a type whose fields match globs (``product: nvidia_*``)."""

    type: str
    match: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_fields(self) -> EventCondition:
        fields = EVENT_FIELDS.get(self.type)
        if fields is None:
            raise ValueError(f"type: expected one of {sorted(EVENT_FIELDS)}")
        unknown = sorted(set(self.match) - set(fields))
        if unknown:
            raise ValueError(f"match: {unknown} cannot be matched on {self.type}; use {list(fields)}")
        return self


Condition = ThresholdCondition | PeerCondition | GrowthCondition | EventCondition


class Rule(_Strict):
    """One named alert rule with its severity, labels, annotations and condition."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=100)]
    severity: Severity
    labels: dict[Annotated[str, Field(pattern=_LABEL)], str] = Field(default_factory=dict)
    annotations: dict[Annotated[str, Field(pattern=_LABEL)], str] = Field(default_factory=dict)
    #: Templates of a resolved transition's annotations, filled with the values at resolution
    #: (``annotations`` when not given).
    resolved_annotations: dict[Annotated[str, Field(pattern=_LABEL)], str] = Field(default_factory=dict)
    threshold: ThresholdCondition | None = None
    peer: PeerCondition | None = None
    growth: GrowthCondition | None = None
    event: EventCondition | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> Rule:
        given = [kind for kind in ("threshold", "peer", "growth", "event") if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one condition of threshold, peer, growth, event (got {given or 'none'})")
        for field, templates in (
            ("annotations", self.annotations),
            ("resolved_annotations", self.resolved_annotations),
        ):
            for name, template in templates.items():
                try:
                    list(string.Formatter().parse(template))
                except ValueError as exc:
                    raise ValueError(f"{field}.{name}: bad template: {exc}") from None
        return self

    @functools.cached_property
    def condition(self) -> Condition:
        """Return the one condition this rule watches."""
        found = self.threshold or self.peer or self.growth or self.event
        assert found is not None
        return found

    @functools.cached_property
    def selector(self) -> tuple[str, dict[str, str]]:
        """Return the signal family a signal rule reads and the labels it must match."""
        condition = self.condition
        if isinstance(condition, PeerCondition):
            return "market_peer_ratio", {
                "entity": condition.entity,
                "peer": condition.peer,
                "metric": condition.metric,
            }
        assert not isinstance(condition, EventCondition), "an event rule reads facts, not a signal"
        return condition.signal, dict(condition.match)

    @functools.cached_property
    def kinds(self) -> frozenset[str]:
        """Return the kinds of series the rule reads (rule evaluation asks for every group)."""
        condition = self.condition
        if isinstance(condition, EventCondition):
            return frozenset({EVENT_KINDS[condition.type]})
        if isinstance(condition, PeerCondition):
            return frozenset({"investment" if condition.metric == INVESTMENT_METRIC else "usage"})
        return SIGNAL_KINDS[self.selector[0]]

    @functools.cached_property
    def version(self) -> str:
        """Return a digest of the rule's definition, recorded with each transition."""
        text = json.dumps(self.definition(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def definition(self) -> dict[str, Any]:
        """Return the rule as JSON data, without resolved_annotations when it has none (versions stay put)."""
        data = self.model_dump(mode="json")
        if not data["resolved_annotations"]:
            del data["resolved_annotations"]
        return data

    def matches(self, labels: Mapping[str, str], match: Mapping[str, str]) -> bool:
        """Return whether every matcher glob matches the label of the same name."""
        return all(fnmatch.fnmatchcase(labels.get(name, ""), glob) for name, glob in match.items())


class RuleSet(_Strict):
    """A whole rules file: every rule, with unique names."""

    rules: list[Rule]

    @model_validator(mode="after")
    def _unique(self) -> RuleSet:
        names = [rule.name for rule in self.rules]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"rule names must be unique: {duplicated}")
        return self

    @functools.cached_property
    def version(self) -> str:
        """Return a digest of the whole rule set."""
        text = json.dumps({"rules": [rule.definition() for rule in self.rules]}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @functools.cached_property
    def label_names(self) -> frozenset[str]:
        """Return every label an alert of these rules can carry (what a matcher may name)."""
        names = {"alertname", "severity"}
        for rule in self.rules:
            names.update(rule.labels)
            condition = rule.condition
            if isinstance(condition, EventCondition):
                names.update((*EVENT_FIELDS[condition.type], "event_id"))
            else:
                names.update(SIGNAL_LABELS[rule.selector[0]])
        return frozenset(names)

    def peer_pairs(self) -> tuple[PeerPair, ...]:
        """Return the peer pairs the rules compare (they must fold on one partition)."""
        return tuple(
            PeerPair(rule.peer.entity, rule.peer.peer, rule.peer.metric) for rule in self.rules if rule.peer is not None
        )


class _Lenient(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class _NoValue:
    """What ``{value:.3f}`` shows when the signal has no value (its facts were retracted)."""

    def __format__(self, spec: str) -> str:
        return "no value"


def render_template(template: str, labels: Mapping[str, str], value: float | None) -> str:
    """Fill ``{label}`` and ``{value}`` placeholders; unknown placeholders stay as written."""
    try:
        return template.format_map(_Lenient(labels, value=_NoValue() if value is None else value))
    except (ValueError, TypeError, IndexError, AttributeError):
        return template


@dataclass(frozen=True)
class Point:
    """One step of a rule's history: the event date and the value then."""

    date: str
    month_index: float
    value: float | None
