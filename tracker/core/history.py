"""A signal's history by event time: its value after each date of the live facts that feed it.

For one signal (a family and its labels) the facts that feed it are those of
the series it is derived from: an entity's usage of one metric, an entity's
investments, a buyer's orders of one product, one export regime, both sides
of a peer ratio, the exchange rates of one currency. Walking their distinct
``occurred_on`` dates in event-time order, the signal is derived from the
facts dated then or earlier, exactly as ``derive_signals`` derives it now; a
point is kept where the value appears or changes, with the ids of the facts
dated then (for a chip stage, an investment period or a currency, only the
facts of that stage, period or currency, when there are any). A restatement
of the same value makes no point. USD figures convert each fact at the rate
for its own date, from every rate known, as the present value does.

The last point of a history is the present value (or, with ``as_of``, the
value as known then). Cost: a signal of one series takes one pass over its history
(``series_history``); a peer ratio or a rate, one derivation per date over the
facts up to it.

A family is derived from series of known kinds, and the labels a series' key
names are its signals' labels: ``history_subject`` and ``key_may_feed`` tell a
reader which keys to read (one fold group, or the keys of a kind) before
reading any value.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, NamedTuple

from tracker.core.catalogue import Signal
from tracker.core.dates import PartialDate
from tracker.core.fold import SeriesValue, live_facts
from tracker.core.fx import Rates, is_rates_key
from tracker.core.periods import Period
from tracker.core.queries import SignalQuery
from tracker.core.routing import INVESTMENT_METRIC, Router, SeriesId
from tracker.core.series_kinds import series_history, series_signals
from tracker.core.signals import derive_signals

__all__ = ["History", "Point", "history_subject", "key_may_feed", "signal_history"]

#: The series kinds each history family is derived from (``market_fx_usd_per_unit`` reads rates only).
_FAMILY_KINDS = {
    "market_usage": ("usage",),
    "market_usage_growth_monthly_ratio": ("usage",),
    "market_investment_usd": ("investment",),
    "market_investment_usd_per_year": ("investment",),
    "market_investment": ("investment",),
    "market_investment_growth_ratio": ("investment",),
    "market_chip_units": ("chip",),
    "market_chip_order_value_usd": ("chip",),
    "market_chip_order_value": ("chip",),
    "market_fx_usd_per_unit": (),
    "market_export_rule_state": ("export",),
    "market_export_rule_changed_timestamp_seconds": ("export",),
    "market_peer_ratio": ("usage", "investment"),
}
#: The labels a series key names, by kind: its signals carry them.
_KEY_LABELS = {
    "usage": ("entity", "metric"),
    "investment": ("entity",),
    "chip": ("buyer", "vendor", "product"),
    "export": ("authority", "product", "destination"),
}
#: The label naming a signal's subject, whose fold group holds every series it is derived from.
_SUBJECT_LABELS = ("entity", "buyer", "authority", "peer")


class Point(NamedTuple):
    """The value of a signal after the facts of one event date, and those facts' ids."""

    date: str
    value: float
    facts: list[str]


class History(NamedTuple):
    """The points of one signal, oldest first."""

    name: str
    labels: dict[str, str]
    points: list[Point]

    def to_json(self) -> dict[str, Any]:
        """Return the history as /v1/signals/history shows it."""
        return {
            "name": self.name,
            "labels": self.labels,
            "points": [{"date": p.date, "value": p.value, "facts": p.facts} for p in self.points],
        }


def _matches(signal: Signal, query: SignalQuery) -> bool:
    labels = dict(signal.labels)
    return signal.name == query.name and all(labels.get(key) == value for key, value in query.labels.items())


def signal_history(router: Router, state: Mapping[str, SeriesValue], query: SignalQuery) -> list[History]:
    """Return the history of every present signal of ``query``'s family whose labels match (state as given)."""
    present = [signal for signal in derive_signals(router, state, trailing=False) if _matches(signal, query)]
    if not present:
        return []
    rates = Rates.from_state(state)
    feeding: dict[tuple[str, tuple[tuple[str, str], ...]], list[str]] = defaultdict(list)
    for key, value in state.items():
        if not key.startswith("#"):
            for signal in series_signals(key, value, rates):
                feeding[signal.name, signal.labels].append(key)
    out = []
    for signal in sorted(present, key=lambda s: s.labels):
        keys = _sources(router, state, signal, feeding)
        if len(keys) == 1 and signal.name not in ("market_peer_ratio", "market_fx_usd_per_unit"):
            points = _series_points(signal, keys[0], state[keys[0]], rates)
        else:
            points = _points(router, state, signal, keys)
        out.append(History(signal.name, dict(signal.labels), points))
    return out


def history_subject(query: SignalQuery) -> str | None:
    """Return the subject whose fold group feeds every signal of ``query``, or None."""
    if query.name == "market_fx_usd_per_unit":
        return None  # rates are kept on every partition, in no group
    return next((query.labels[label] for label in _SUBJECT_LABELS if label in query.labels), None)


def key_may_feed(key: str, query: SignalQuery) -> bool:
    """Return whether a table key may feed a signal of ``query`` (exchange rates always may), without its value."""
    if key.startswith("#"):
        return is_rates_key(key)
    kind, _, labels = key.partition("/")[2].partition(":")
    if kind not in _FAMILY_KINDS.get(query.name or "", ()):
        return False
    if query.name == "market_peer_ratio":
        return True  # a ratio reads both sides: the peer's series do not carry the entity's labels
    named = dict(zip(_KEY_LABELS[kind], labels.split(":"), strict=True))
    return all(named.get(label, wanted) == wanted for label, wanted in query.labels.items())


def _sources(
    router: Router,
    state: Mapping[str, SeriesValue],
    signal: Signal,
    feeding: Mapping[tuple[str, tuple[tuple[str, str], ...]], list[str]],
) -> list[str]:
    """Return the keys of the series a signal is derived from."""
    if signal.name == "market_fx_usd_per_unit":
        return sorted(key for key in state if is_rates_key(key))
    if signal.name == "market_peer_ratio":
        labels = dict(signal.labels)
        metric = labels["metric"]
        sides = [labels["entity"], labels["peer"]]
        if metric == INVESTMENT_METRIC:
            series = [SeriesId("investment", (side,)) for side in sides]
        else:
            series = [SeriesId("usage", (side, metric)) for side in sides]
        return [key for key in (router.table_key(s) for s in series) if key in state]
    return sorted(feeding.get((signal.name, signal.labels), []))


def _feeds(signal: Signal, key: str, payload: list[Any]) -> bool:
    """Return whether a fact is of the stage, period or currency a signal is about."""
    labels = dict(signal.labels)
    if is_rates_key(key):
        return bool(payload[2] == labels.get("currency"))
    kind = key.partition("/")[2].partition(":")[0]
    if kind == "chip":
        stage = labels.get("stage", "ordered" if "order_value" in signal.name else None)
        return stage is None or payload[2] == stage
    if kind == "investment" and "period" in labels:
        return str(Period.of(payload[2])) in (labels["period"], labels.get("peer_period"))
    return True


def _series_points(signal: Signal, key: str, value: SeriesValue, rates: Rates) -> list[Point]:
    """Return the points of a signal of one series from its history (``series_history``: one pass, not one per date)."""
    facts: dict[tuple[float, int], list[tuple[str, list[Any]]]] = defaultdict(list)
    for event_id, payload in live_facts(value):
        facts[PartialDate.parse(payload[1]).sort_key()].append((event_id, payload))
    points: list[Point] = []
    for date, signals in reversed(list(series_history(key, value, rates))):
        found = _value(signals, signal)
        if found is None or (points and points[-1].value == found):
            continue
        group = sorted(facts[date.sort_key()], key=lambda item: item[0])
        ids = [event_id for event_id, payload in group if _feeds(signal, key, payload)]
        points.append(Point(group[0][1][1], found, ids or [event_id for event_id, _ in group]))
    return points


def _points(router: Router, state: Mapping[str, SeriesValue], signal: Signal, keys: list[str]) -> list[Point]:
    """Return the points of a signal read from several series (a peer ratio) or from the rates, date by date."""
    fx = signal.name == "market_fx_usd_per_unit"
    dated: dict[str, tuple[tuple[float, int], str, str, list[Any]]] = {}
    for key in keys:
        for event_id, payload in live_facts(state[key]):
            if fx and not _feeds(signal, key, payload):
                continue
            dated.setdefault(event_id, (PartialDate.parse(payload[1]).sort_key(), event_id, key, payload))
    facts = sorted(dated.values(), key=lambda item: (item[0], item[1]))
    # The rates convert money at every date; a history of rates walks the rates themselves.
    base = {} if fx else {key: value for key, value in state.items() if is_rates_key(key)}
    points: list[Point] = []
    end = 0
    while end < len(facts):
        start, order = end, facts[end][0]
        while end < len(facts) and facts[end][0] == order:
            end += 1
        prefix: dict[str, SeriesValue] = dict(base)
        for _, event_id, key, payload in facts[:end]:
            prefix.setdefault(key, {"facts": {}, "retracted": {}})["facts"][event_id] = payload
        value = _value(derive_signals(router, prefix, trailing=False), signal)
        if value is None or (points and points[-1].value == value):
            continue
        group = facts[start:end]
        ids = [event_id for _, event_id, key, payload in group if _feeds(signal, key, payload)]
        points.append(Point(group[0][3][1], value, ids or [event_id for _, event_id, _, _ in group]))
    return points


def _value(signals: list[Signal], wanted: Signal) -> float | None:
    for signal in signals:
        if signal.name == wanted.name and signal.labels == wanted.labels:
            return signal.value
    return None
