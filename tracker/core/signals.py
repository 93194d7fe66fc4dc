"""Signals derived from folded series: what /metrics and /v1/signals show.

Every function here reads series values (see ``tracker.core.fold``) and
returns ``Signal`` tuples; nothing is stored, so a signal is always a
function of the live facts. Event time only: "latest" means the newest
``occurred_on`` (ties broken by precision, then id), never the newest arrival.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from tracker.core.dates import PartialDate, months_between
from tracker.core.fold import SeriesValue, live_facts
from tracker.core.routing import INVESTMENT_METRIC, Router, SeriesId, split_table_key

__all__ = ["SIGNAL_HELP", "TRAILING_WINDOWS", "Signal", "derive_signals", "series_history", "series_signals"]

TRAILING_WINDOWS = {"90d": 90, "365d": 365}
_KIND_TYPE = {
    "usage": "usage.reported",
    "investment": "investment.announced",
    "chip": "chip_delivery.reported",
    "export": "export_rule.changed",
}

SIGNAL_HELP = {
    "market_usage": "Latest usage figure by event time (point estimate).",
    "market_usage_growth_monthly_ratio": "Compounded monthly growth between the two newest usage figures.",
    "market_investment_usd": "Latest announced AI-infrastructure spending for a period, in USD.",
    "market_investment_growth_ratio": "Growth of announced spending versus the previous period.",
    "market_chip_units": "Chip units summed over distinct live reports, by stage.",
    "market_chip_order_value_usd": "Value of ordered chips: units times unit price, in USD.",
    "market_export_rule_state": "Export regime by latest effective date: +1 loosened, -1 tightened.",
    "market_export_rule_changed_timestamp_seconds": "Effective date of the latest export-rule change.",
    "market_peer_ratio": "Entity's latest figure divided by its peer's, for configured peer pairs.",
    "market_signal_observed_timestamp_seconds": "Event time of the newest observation of a signal.",
    "market_events_trailing": "Live events in a trailing window anchored at the entity's newest event.",
}


class Signal(NamedTuple):
    """One derived value with its family name and labels (a tuple: rule evaluation makes many)."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, name: str) -> str:
        """Return one label's value."""
        return dict(self.labels)[name]


def _signal(name: str, value: float, **labels: str) -> Signal:
    return Signal(name, tuple(labels.items()), value)


@functools.lru_cache(maxsize=65536)
def _timestamp(date: PartialDate) -> float:
    return dt.datetime.combine(date.start, dt.time(), dt.UTC).timestamp()


@functools.lru_cache(maxsize=65536)
def _when(text: str) -> tuple[tuple[float, int], PartialDate]:
    # Every evaluation of a series sorts its facts by date: the same few thousand dates.
    date = PartialDate.parse(text)
    return date.sort_key(), date


Dated = tuple[tuple[float, int], str, PartialDate, list[Any]]


def _newest_first(facts: Iterable[tuple[str, list[Any]]]) -> list[Dated]:
    """Return (sort key, event id, date, payload) of each fact, newest first (ids break ties)."""
    dated: list[Dated] = []
    for event_id, payload in facts:
        order, date = _when(payload[1])
        dated.append((order, event_id, date, payload))
    # Ids are unique within a series: the sort never compares dates or payloads.
    dated.sort(reverse=True)
    return dated


def _monthly_growth(newer: tuple[float, PartialDate], older: tuple[float, PartialDate]) -> float | None:
    months = months_between(older[1], newer[1])
    if months <= 0 or older[0] <= 0:
        return None
    return float((newer[0] / older[0]) ** (1 / months) - 1)


def _usage(series: SeriesId, dated: list[Dated]) -> list[Signal]:
    entity, metric = series.labels
    if not dated:
        return []
    _, _, newest_date, newest = dated[0]
    labels = (("entity", entity), ("metric", metric))
    out = [
        Signal("market_usage", labels, newest[2]),
        Signal("market_signal_observed_timestamp_seconds", labels, _timestamp(newest_date)),
    ]
    newest_month = newest_date.month_index
    for _, _, date, payload in dated:
        if date.month_index < newest_month:
            growth = _monthly_growth((newest[2], newest_date), (payload[2], date))
            if growth is not None:
                out.append(Signal("market_usage_growth_monthly_ratio", labels, growth))
            break
    return out


def _investment(series: SeriesId, dated: list[Dated]) -> list[Signal]:
    (entity,) = series.labels
    if not dated:
        return []
    by_period: dict[int, float] = {}
    for *_, payload in dated:
        by_period.setdefault(payload[2], payload[3])
    periods = sorted(by_period.items())
    out = [Signal("market_investment_usd", (("entity", entity), ("period", str(p))), amount) for p, amount in periods]
    for period, amount in periods:
        previous = by_period.get(period - 1)
        if previous:
            labels = (("entity", entity), ("period", str(period)))
            out.append(Signal("market_investment_growth_ratio", labels, amount / previous - 1))
    observed = (("entity", entity), ("metric", INVESTMENT_METRIC))
    out.append(Signal("market_signal_observed_timestamp_seconds", observed, _timestamp(dated[0][2])))
    return out


def _chip(series: SeriesId, dated: list[Dated]) -> list[Signal]:
    buyer, vendor, product = series.labels
    # Sum in id order with fsum: the total must not depend on arrival order.
    units: dict[str, list[float]] = defaultdict(list)
    values: list[float] = []
    for *_, (_, _, stage, count, price) in sorted(dated, key=operator.itemgetter(1)):
        units[stage].append(count)
        if stage == "ordered" and price is not None:
            values.append(count * price)
    labels = (("buyer", buyer), ("vendor", vendor), ("product", product))
    out = [
        Signal("market_chip_units", (*labels, ("stage", stage)), math.fsum(counts))
        for stage, counts in sorted(units.items())
    ]
    if values:
        out.append(Signal("market_chip_order_value_usd", labels, math.fsum(values)))
    return out


def _export(series: SeriesId, dated: list[Dated]) -> list[Signal]:
    authority, product, destination = series.labels
    changes = [(_when(payload[2])[0], order, event_id, payload) for order, event_id, _, payload in dated]
    if not changes:
        return []
    *_, latest = max(changes)
    labels = (("authority", authority), ("product", product), ("destination", destination))
    return [
        Signal("market_export_rule_state", labels, float(latest[3])),
        Signal("market_export_rule_changed_timestamp_seconds", labels, _timestamp(_when(latest[2])[1])),
    ]


#: The signals of one series, from its live facts newest first (``_newest_first``).
_SERIES_SIGNALS: dict[str, Callable[[SeriesId, list[Dated]], list[Signal]]] = {
    "usage": _usage,
    "investment": _investment,
    "chip": _chip,
    "export": _export,
}


def _latest_figure(series: Mapping[SeriesId, SeriesValue], entity: str, metric: str) -> float | None:
    if metric == INVESTMENT_METRIC:
        value = series.get(SeriesId("investment", (entity,)))
        if value is None:
            return None
        dated = sorted(((_when(p[1])[0], p[2], event_id, p[3]) for event_id, p in live_facts(value)), reverse=True)
        return dated[0][3] if dated else None
    value = series.get(SeriesId("usage", (entity, metric)))
    dated_usage = _newest_first(live_facts(value)) if value is not None else []
    return float(dated_usage[0][3][2]) if dated_usage else None


def _trailing(series: Mapping[SeriesId, SeriesValue]) -> list[Signal]:
    dates: dict[str, list[tuple[str, dt.date]]] = defaultdict(list)
    for series_id, value in series.items():
        for _, payload in live_facts(value):
            dates[series_id.subject].append((_KIND_TYPE[series_id.kind], _when(payload[1])[1].start))
    out: list[Signal] = []
    for entity, facts in sorted(dates.items()):
        anchor = max(day for _, day in facts)
        for window, days in TRAILING_WINDOWS.items():
            counts: dict[str, int] = defaultdict(int)
            for kind, day in facts:
                if (anchor - day).days < days:
                    counts[kind] += 1
            out.extend(
                _signal("market_events_trailing", float(count), entity=entity, type=kind, window=window)
                for kind, count in sorted(counts.items())
            )
    return out


def series_signals(key: str, value: SeriesValue) -> list[Signal]:
    """Return the signals of one series alone (not the group-wide families), by table key."""
    if key.startswith("#"):
        return []
    series_id = split_table_key(key)[1]
    return _SERIES_SIGNALS[series_id.kind](series_id, _newest_first(live_facts(value)))


def series_history(key: str, value: SeriesValue) -> Iterator[tuple[PartialDate, list[Signal]]]:
    """Yield the signals of one series at each distinct date of its facts, newest first.

    The signals at a date are those of the facts dated then or earlier: what the
    series showed at that point of event time. Rule evaluation walks this back
    from the newest date and usually stops at the first point.
    """
    series_id = split_table_key(key)[1]
    derive = _SERIES_SIGNALS[series_id.kind]
    dated = _newest_first(live_facts(value))
    for start, (order, _, date, _) in enumerate(dated):
        if start == 0 or dated[start - 1][0] != order:
            yield date, derive(series_id, dated[start:])


def derive_signals(
    router: Router, state: Mapping[str, SeriesValue], trailing: bool = True, peers: bool = True
) -> list[Signal]:
    """Derive signals from table keys and series values (tombstone keys are skipped).

    ``trailing`` and ``peers`` switch off the group-wide families when a caller
    (rule evaluation) does not need them.
    """
    groups: dict[str, dict[SeriesId, SeriesValue]] = defaultdict(dict)
    for key, value in state.items():
        if not key.startswith("#"):
            fold_key, series_id = split_table_key(key)
            groups[fold_key][series_id] = value
    out: list[Signal] = []
    for fold_key, series in sorted(groups.items()):
        for series_id, value in sorted(series.items(), key=lambda item: item[0].encode()):
            out.extend(_SERIES_SIGNALS[series_id.kind](series_id, _newest_first(live_facts(value))))
        if trailing:
            out.extend(_trailing(series))
        for pair in router.peers_in(fold_key) if peers else ():
            mine = _latest_figure(series, pair.entity, pair.metric)
            theirs = _latest_figure(series, pair.peer, pair.metric)
            if mine is not None and theirs:
                out.append(
                    _signal(
                        "market_peer_ratio",
                        mine / theirs,
                        entity=pair.entity,
                        peer=pair.peer,
                        metric=pair.metric,
                    )
                )
    return out
