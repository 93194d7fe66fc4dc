"""The signals of one series, kind by kind (usage, investment, chip orders, export regimes), and their histories.

A series' signals are derived from its live facts listed newest first by event
time (``newest_first``). Its history is the same at each distinct date of its
facts, from the facts dated then or earlier: what alert rules walk back through.
Money is converted to USD at the rate for each fact's own date.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from tracker.core.catalogue import Signal
from tracker.core.dates import PartialDate, months_between
from tracker.core.fold import SeriesValue, live_facts
from tracker.core.fx import Rates
from tracker.core.periods import Period
from tracker.core.routing import INVESTMENT_METRIC, SeriesId, split_table_key

__all__ = [
    "Announced",
    "Dated",
    "announcement",
    "kind_signals",
    "newest_first",
    "series_history",
    "series_signals",
    "timestamp",
    "when",
]


@functools.lru_cache(maxsize=65536)
def timestamp(date: PartialDate) -> float:
    return dt.datetime.combine(date.start, dt.time(), dt.UTC).timestamp()


@functools.lru_cache(maxsize=65536)
def when(text: str) -> tuple[tuple[float, int], PartialDate]:
    # Every evaluation of a series sorts its facts by date: the same few thousand dates.
    date = PartialDate.parse(text)
    return date.sort_key(), date


Dated = tuple[tuple[float, int], str, PartialDate, list[Any]]


def newest_first(facts: Iterable[tuple[str, list[Any]]]) -> list[Dated]:
    """Return (sort key, event id, date, payload) of each fact, newest first (ids break ties)."""
    dated: list[Dated] = []
    for event_id, payload in facts:
        order, date = when(payload[1])
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
        Signal("market_signal_observed_timestamp_seconds", labels, timestamp(newest_date)),
    ]
    newest_month = newest_date.month_index
    for _, _, date, payload in dated:
        if date.month_index < newest_month:
            growth = _monthly_growth((newest[2], newest_date), (payload[2], date))
            if growth is not None:
                out.append(Signal("market_usage_growth_monthly_ratio", labels, growth))
            break
    return out


class Announced(NamedTuple):
    """The latest announcement for one period: the span, the amount as reported, its currency and date."""

    span: Period
    amount: float
    currency: str
    on: str


def announcement(payload: list[Any]) -> Announced:
    # A v1 payload has no currency: it was in USD.
    currency = payload[4] if len(payload) > 4 else "USD"
    return Announced(Period.of(payload[2]), payload[3], currency, payload[1])


def _investment(series: SeriesId, dated: list[Dated], rates: Rates) -> list[Signal]:
    (entity,) = series.labels
    if not dated:
        return []
    by_period: dict[Period, Announced] = {}
    for *_, payload in dated:
        announced = announcement(payload)
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
    announcements: dict[Period, list[tuple[int, Announced]]] = {}
    for place, (*_, payload) in enumerate(dated):
        announced = announcement(payload)
        announcements.setdefault(announced.span, []).append((place, announced))
    cursors = dict.fromkeys(announcements, 0)
    for start, (order, _, date, _) in enumerate(dated):
        if start and dated[start - 1][0] == order:
            continue  # not the newest fact of its date
        by_period: dict[Period, Announced] = {}
        for span, listed in announcements.items():
            cursor = cursors[span]
            while cursor < len(listed) and listed[cursor][0] < start:
                cursor += 1
            cursors[span] = cursor
            if cursor < len(listed):
                by_period[span] = listed[cursor][1]
        yield date, _investment_signals(entity, by_period, date, rates)


def _investment_signals(
    entity: str, by_period: Mapping[Period, Announced], newest: PartialDate, rates: Rates
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
    out.append(Signal("market_signal_observed_timestamp_seconds", observed, timestamp(newest)))
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


class _Column(NamedTuple):
    """One figure of a chip series' facts, with each fact's place in the newest-first list."""

    places: list[int]
    figures: list[float]

    def since(self, start: int) -> list[float]:
        """Return the figures of the facts at ``start`` or later in the list (dated then or earlier)."""
        return self.figures[bisect.bisect_left(self.places, start) :]


class _ChipColumns(NamedTuple):
    """A chip series' figures by stage, in USD and by currency, and the last place of an unconvertible order."""

    units: dict[str, _Column]
    usd: _Column
    native: dict[str, _Column]
    unconverted: int


def _chip_columns(dated: list[Dated], rates: Rates) -> _ChipColumns:
    units: dict[str, _Column] = {}
    usd = _Column([], [])
    native: dict[str, _Column] = {}
    unconverted = -1
    for place, (*_, payload) in enumerate(dated):
        stage, count = payload[2], payload[3]
        if count is not None:
            column = units.setdefault(stage, _Column([], []))
            column.places.append(place)
            column.figures.append(count)
        figure = _order_figure(payload) if stage == "ordered" else None
        if figure is None:
            continue
        column = native.setdefault(figure[1], _Column([], []))
        column.places.append(place)
        column.figures.append(figure[0])
        converted = rates.to_usd(*figure, payload[1])
        if converted is None:
            unconverted = place
        else:
            usd.places.append(place)
            usd.figures.append(converted)
    return _ChipColumns(units, usd, native, unconverted)


def _chip_signals(series: SeriesId, columns: _ChipColumns, start: int) -> list[Signal]:
    """Return the chip signals of the facts at ``start`` or later in the newest-first list.

    Sums are ``math.fsum``: exact, then rounded once, so they depend on the facts alone,
    never on the order they were folded or listed in.
    """
    labels = tuple(zip(("buyer", "vendor", "product"), series.labels, strict=True))
    out = []
    for stage, column in sorted(columns.units.items()):
        counts = column.since(start)
        if counts:
            out.append(Signal("market_chip_units", (*labels, ("stage", stage)), math.fsum(counts)))
    values = columns.usd.since(start)
    if values and columns.unconverted < start:  # a total missing one order would be wrong: none at all
        out.append(Signal("market_chip_order_value_usd", labels, math.fsum(values)))
    for currency, column in sorted(columns.native.items()):
        figures = column.since(start)
        if figures:
            out.append(Signal("market_chip_order_value", (*labels, ("currency", currency)), math.fsum(figures)))
    return out


def _chip(series: SeriesId, dated: list[Dated], rates: Rates) -> list[Signal]:
    return _chip_signals(series, _chip_columns(dated, rates), 0)


def _chip_history(series: SeriesId, dated: list[Dated], rates: Rates) -> Iterator[tuple[PartialDate, list[Signal]]]:
    """Yield a chip series' signals at each distinct date of its facts, newest first.

    Each figure is listed once with its fact's place; a point sums the tail of each
    list (the facts dated then or earlier) instead of collecting and sorting its
    facts again: a large order's walk back was quadratic in the series' facts.
    """
    columns = _chip_columns(dated, rates)
    for start, (order, _, date, _) in enumerate(dated):
        if start == 0 or dated[start - 1][0] != order:
            yield date, _chip_signals(series, columns, start)


def _export(series: SeriesId, dated: list[Dated], rates: Rates) -> list[Signal]:
    authority, product, destination = series.labels
    changes = [(when(payload[2])[0], order, event_id, payload) for order, event_id, _, payload in dated]
    if not changes:
        return []
    *_, latest = max(changes)
    labels = (("authority", authority), ("product", product), ("destination", destination))
    return [
        Signal("market_export_rule_state", labels, float(latest[3])),
        Signal("market_export_rule_changed_timestamp_seconds", labels, timestamp(when(latest[2])[1])),
    ]


#: The signals of one series, from its live facts newest first (``newest_first``).
_SERIES_SIGNALS: dict[str, Callable[[SeriesId, list[Dated], Rates], list[Signal]]] = {
    "usage": _usage,
    "investment": _investment,
    "chip": _chip,
    "export": _export,
}


#: Histories derived in one pass over a series' facts, for the kinds whose every point reads them all.
_HISTORIES: dict[str, Callable[[SeriesId, list[Dated], Rates], Iterator[tuple[PartialDate, list[Signal]]]]] = {
    "investment": _investment_history,
    "chip": _chip_history,
}


def kind_signals(series_id: SeriesId, value: SeriesValue, rates: Rates) -> list[Signal]:
    """Return the signals of one series by its id."""
    return _SERIES_SIGNALS[series_id.kind](series_id, newest_first(live_facts(value)), rates)


def series_signals(key: str, value: SeriesValue, rates: Rates | None = None) -> list[Signal]:
    """Return the signals of one series alone (not the group-wide families), by table key."""
    if key.startswith("#"):
        return []
    series_id = split_table_key(key)[1]
    return _SERIES_SIGNALS[series_id.kind](series_id, newest_first(live_facts(value)), rates or Rates())


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
    dated = newest_first(live_facts(value))
    linear = _HISTORIES.get(series_id.kind)
    if linear is not None:
        yield from linear(series_id, dated, rates)
        return
    for start, (order, _, date, _) in enumerate(dated):
        if start == 0 or dated[start - 1][0] != order:
            yield date, derive(series_id, dated[start:], rates)
