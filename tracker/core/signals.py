"""Signals derived from folded series: what /metrics and /v1/signals show.

Every function here reads series values (see ``tracker.core.fold``) and
returns ``Signal`` tuples; nothing is stored, so a signal is always a
function of the live facts. Event time only: "latest" means the newest
``occurred_on`` (ties broken by precision, then id), never the newest arrival.

Money is kept in the currency reported. A ``*_usd`` family converts it at the
exchange rate for the fact's own ``occurred_on`` (``tracker.core.fx``) and is
absent when no rate is known: never the unconverted number.
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
from tracker.core.fx import Rates, is_rates_key
from tracker.core.periods import Period
from tracker.core.routing import INVESTMENT_METRIC, Router, SeriesId, split_table_key

__all__ = [
    "SIGNAL_HELP",
    "SIGNAL_LABELS",
    "TRAILING_WINDOWS",
    "Signal",
    "derive_signals",
    "series_history",
    "series_signals",
]

#: Every signal family and the labels it carries: what a query may filter on and an alert on it is labelled with.
SIGNAL_LABELS: dict[str, tuple[str, ...]] = {
    "market_usage": ("entity", "metric"),
    "market_usage_growth_monthly_ratio": ("entity", "metric"),
    "market_investment_usd": ("entity", "period"),
    "market_investment_usd_per_year": ("entity", "period"),
    "market_investment": ("entity", "period", "currency"),
    "market_investment_growth_ratio": ("entity", "period"),
    "market_chip_units": ("buyer", "vendor", "product", "stage"),
    "market_chip_order_value_usd": ("buyer", "vendor", "product"),
    "market_chip_order_value": ("buyer", "vendor", "product", "currency"),
    "market_fx_usd_per_unit": ("currency",),
    "market_export_rule_state": ("authority", "product", "destination"),
    "market_export_rule_changed_timestamp_seconds": ("authority", "product", "destination"),
    "market_peer_ratio": ("entity", "peer", "metric", "period", "peer_period"),
    "market_signal_observed_timestamp_seconds": ("entity", "metric"),
    "market_events_trailing": ("entity", "type", "window"),
}

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
    "market_investment_usd_per_year": "Announced spending for a period in USD, spread evenly over its years.",
    "market_investment": "Latest announced AI-infrastructure spending for a period, in the currency reported.",
    "market_investment_growth_ratio": "Growth of announced spending versus the previous period of equal length.",
    "market_chip_units": "Chip units summed over distinct live reports, by stage.",
    "market_chip_order_value_usd": "Value of ordered chips in USD: the order value reported, else units times price.",
    "market_chip_order_value": "Value of ordered chips in the currency reported, by currency.",
    "market_fx_usd_per_unit": "Newest exchange rate by event time: US dollars for one unit of the currency.",
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
    """Return the compounded monthly growth from ``older`` to ``newer``, or None if there is none to give.

    None when the older figure is not positive, and when the growth is beyond a float: two
    figures a few days apart compound their ratio to the power of ten or more (a ratio of
    1e5 between "2023-06" and "2023-06-15" overflowed, and the error stopped the fold).
    """
    months = months_between(older[1], newer[1])
    if months <= 0 or older[0] <= 0:
        return None
    try:
        return float((newer[0] / older[0]) ** (1 / months) - 1)
    except OverflowError:
        return None


def _usage(series: SeriesId, dated: list[Dated], rates: Rates) -> list[Signal]:
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


class _Announced(NamedTuple):
    """The latest announcement for one period: the span, the amount as reported, its currency and date."""

    span: Period
    amount: float
    currency: str
    on: str


def _announced(payload: list[Any]) -> _Announced:
    # A v1 payload has no currency: it was in USD.
    currency = payload[4] if len(payload) > 4 else "USD"
    return _Announced(Period.of(payload[2]), payload[3], currency, payload[1])


def _investment(series: SeriesId, dated: list[Dated], rates: Rates) -> list[Signal]:
    (entity,) = series.labels
    if not dated:
        return []
    by_period: dict[Period, _Announced] = {}
    for *_, payload in dated:
        announced = _announced(payload)
        by_period.setdefault(announced.span, announced)
    return _investment_signals(entity, by_period, dated[0][2], rates)


def _investment_history(
    series: SeriesId, dated: list[Dated], rates: Rates
) -> Iterator[tuple[PartialDate, list[Signal]]]:
    """Yield an investment series' signals at each distinct date of its facts, newest first.

    What ``_investment`` gives for each suffix of ``dated``, in time linear in the facts:
    each period's announcements are listed once, newest first, and a cursor per period
    steps past those newer than the point. Deriving each point from its own suffix made a
    firing unit's walk back quadratic (at 1,000,000 events, 42 million announcements read
    for 1 million points: 60% of alert evaluation).
    """
    (entity,) = series.labels
    announcements: dict[Period, list[tuple[int, _Announced]]] = {}
    for place, (*_, payload) in enumerate(dated):
        announced = _announced(payload)
        announcements.setdefault(announced.span, []).append((place, announced))
    cursors = dict.fromkeys(announcements, 0)
    for start, (order, _, date, _) in enumerate(dated):
        if start and dated[start - 1][0] == order:
            continue  # not the newest fact of its date
        by_period: dict[Period, _Announced] = {}
        for span, listed in announcements.items():
            cursor = cursors[span]
            while cursor < len(listed) and listed[cursor][0] < start:
                cursor += 1
            cursors[span] = cursor
            if cursor < len(listed):
                by_period[span] = listed[cursor][1]
        yield date, _investment_signals(entity, by_period, date, rates)


def _investment_signals(
    entity: str, by_period: Mapping[Period, _Announced], newest: PartialDate, rates: Rates
) -> list[Signal]:
    """Return the investment signals of each period's latest announcement, observed at ``newest``."""
    periods = sorted(by_period.items())
    usd = {span: rates.to_usd(item.amount, item.currency, item.on) for span, item in periods}
    out = [
        Signal("market_investment_usd", (("entity", entity), ("period", str(span))), amount)
        for span, amount in usd.items()
        if amount is not None
    ]
    for span, item in periods:
        previous = by_period.get(span.shifted(-span.years))  # like with like: a span of the same length
        if previous is None:
            continue
        if previous.currency == item.currency:
            ratio = item.amount / previous.amount if previous.amount else None
        else:
            now, then = usd[span], usd[previous.span]
            ratio = now / then if now is not None and then else None
        if ratio is not None:
            labels = (("entity", entity), ("period", str(span)))
            out.append(Signal("market_investment_growth_ratio", labels, ratio - 1))
    observed = (("entity", entity), ("metric", INVESTMENT_METRIC))
    out.append(Signal("market_signal_observed_timestamp_seconds", observed, _timestamp(newest)))
    for span, item in periods:
        labels = (("entity", entity), ("period", str(span)))
        amount = usd[span]
        if amount is not None:
            out.append(Signal("market_investment_usd_per_year", labels, amount / span.years))
        out.append(Signal("market_investment", (*labels, ("currency", item.currency)), item.amount))
    return out


def _order_figure(payload: list[Any]) -> tuple[float, str] | None:
    """Return the value of an order and its currency: the value reported, else units times unit price."""
    _, _, _, count, price, *v2 = payload
    price_currency, value, value_currency = v2 or ("USD", None, None)  # a v1 payload: prices in USD
    if value is not None:
        return float(value), str(value_currency)
    if count is not None and price is not None:
        return count * price, str(price_currency)
    return None


def _chip(series: SeriesId, dated: list[Dated], rates: Rates) -> list[Signal]:
    buyer, vendor, product = series.labels
    # Sum in id order with fsum: the total must not depend on arrival order.
    units: dict[str, list[float]] = defaultdict(list)
    values: list[float] = []
    native: dict[str, list[float]] = defaultdict(list)
    unconverted = False
    for *_, payload in sorted(dated, key=operator.itemgetter(1)):
        stage, count = payload[2], payload[3]
        if count is not None:
            units[stage].append(count)
        figure = _order_figure(payload) if stage == "ordered" else None
        if figure is None:
            continue
        native[figure[1]].append(figure[0])
        usd = rates.to_usd(*figure, payload[1])
        if usd is None:
            unconverted = True  # a total missing one order would be wrong: no USD total at all
        else:
            values.append(usd)
    labels = (("buyer", buyer), ("vendor", vendor), ("product", product))
    out = [
        Signal("market_chip_units", (*labels, ("stage", stage)), math.fsum(counts))
        for stage, counts in sorted(units.items())
    ]
    if values and not unconverted:
        out.append(Signal("market_chip_order_value_usd", labels, math.fsum(values)))
    out.extend(
        Signal("market_chip_order_value", (*labels, ("currency", currency)), math.fsum(figures))
        for currency, figures in sorted(native.items())
    )
    return out


def _export(series: SeriesId, dated: list[Dated], rates: Rates) -> list[Signal]:
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
_SERIES_SIGNALS: dict[str, Callable[[SeriesId, list[Dated], Rates], list[Signal]]] = {
    "usage": _usage,
    "investment": _investment,
    "chip": _chip,
    "export": _export,
}


class _Figure(NamedTuple):
    """An entity's latest figure for a peer ratio, and the period it is for (investments only)."""

    value: float
    period: str | None = None


def _latest_figure(series: Mapping[SeriesId, SeriesValue], entity: str, metric: str, rates: Rates) -> _Figure | None:
    if metric == INVESTMENT_METRIC:
        value = series.get(SeriesId("investment", (entity,)))
        if value is None:
            return None
        # The latest announcement by event time (then the later period, then the id).
        latest = max(
            ((_when(p[1])[0], Period.of(p[2]), event_id, p) for event_id, p in live_facts(value)),
            default=None,
        )
        if latest is None:
            return None
        announced = _announced(latest[3])
        usd = rates.to_usd(announced.amount, announced.currency, announced.on)
        # Per year, so that a plan over five years compares with a plan for one.
        return None if usd is None else _Figure(usd / announced.span.years, str(announced.span))
    value = series.get(SeriesId("usage", (entity, metric)))
    dated_usage = _newest_first(live_facts(value)) if value is not None else []
    return _Figure(float(dated_usage[0][3][2])) if dated_usage else None


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


def _fx(rates: Rates) -> list[Signal]:
    return [
        Signal("market_fx_usd_per_unit", (("currency", currency),), rate.usd_per_unit)
        for currency, rate in rates.latest()
    ]


def series_signals(key: str, value: SeriesValue, rates: Rates | None = None) -> list[Signal]:
    """Return the signals of one series alone (not the group-wide families), by table key."""
    if key.startswith("#"):
        return []
    series_id = split_table_key(key)[1]
    return _SERIES_SIGNALS[series_id.kind](series_id, _newest_first(live_facts(value)), rates or Rates())


def series_history(
    key: str, value: SeriesValue, rates: Rates | None = None
) -> Iterator[tuple[PartialDate, list[Signal]]]:
    """Yield the signals of one series at each distinct date of its facts, newest first.

    The signals at a date are those of the facts dated then or earlier: what the
    series showed at that point of event time. Rule evaluation walks this back
    from the newest date and usually stops at the first point. Each fact is
    converted at the rate for its own date, so every point uses ``rates`` whole.
    """
    series_id = split_table_key(key)[1]
    derive = _SERIES_SIGNALS[series_id.kind]
    rates = rates or Rates()
    dated = _newest_first(live_facts(value))
    if series_id.kind == "investment":
        yield from _investment_history(series_id, dated, rates)
        return
    for start, (order, _, date, _) in enumerate(dated):
        if start == 0 or dated[start - 1][0] != order:
            yield date, derive(series_id, dated[start:], rates)


def derive_signals(
    router: Router,
    state: Mapping[str, SeriesValue],
    trailing: bool = True,
    peers: bool = True,
    rates: Rates | None = None,
) -> list[Signal]:
    """Derive signals from table keys and series values (tombstone keys are skipped).

    Exchange rates are the rates keys of ``state`` unless ``rates`` is given (rule
    evaluation reads them once per group); the rates family is derived from
    ``state``'s own. ``trailing`` and ``peers`` switch off the group-wide families
    when a caller (rule evaluation) does not need them.
    """
    groups: dict[str, dict[SeriesId, SeriesValue]] = defaultdict(dict)
    rates_keys: list[str] = []
    for key, value in state.items():
        if not key.startswith("#"):
            fold_key, series_id = split_table_key(key)
            groups[fold_key][series_id] = value
        elif is_rates_key(key):
            rates_keys.append(key)
    own = Rates.from_state({key: state[key] for key in rates_keys}) if rates_keys else Rates()
    rates = own if rates is None else rates
    out: list[Signal] = []
    for fold_key, series in sorted(groups.items()):
        for series_id, value in sorted(series.items(), key=lambda item: item[0].encode()):
            out.extend(_SERIES_SIGNALS[series_id.kind](series_id, _newest_first(live_facts(value)), rates))
        if trailing:
            out.extend(_trailing(series))
        for pair in router.peers_in(fold_key) if peers else ():
            mine = _latest_figure(series, pair.entity, pair.metric, rates)
            theirs = _latest_figure(series, pair.peer, pair.metric, rates)
            if mine is not None and theirs is not None and theirs.value:
                labels = {"entity": pair.entity, "peer": pair.peer, "metric": pair.metric}
                if mine.period is not None and theirs.period is not None:
                    labels.update(period=mine.period, peer_period=theirs.period)  # what the ratio compares
                out.append(_signal("market_peer_ratio", mine.value / theirs.value, **labels))
    out.extend(_fx(own))
    return out
