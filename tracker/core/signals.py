"""Signals derived from a fold group's series: what /metrics and /v1/signals show.

``derive_signals`` gives each series' own signals (``tracker.core.series_kinds``)
and the families computed over a whole fold group: trailing event counts, peer
ratios, exchange rates. Nothing is stored, so a signal is always a function of
the live facts. Event time only: "latest" means the newest
``occurred_on`` (ties broken by precision, then id), never the newest arrival.

Money is kept in the currency reported. A ``*_usd`` family converts it at the
exchange rate for the fact's own ``occurred_on`` (``tracker.core.fx``) and is
absent when no rate is known: never the unconverted number.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from typing import NamedTuple

from tracker.core.catalogue import TRAILING_WINDOWS, Signal
from tracker.core.fold import SeriesValue, live_facts
from tracker.core.fx import Rates, is_rates_key
from tracker.core.periods import Period
from tracker.core.routing import INVESTMENT_METRIC, Router, SeriesId, split_table_key
from tracker.core.series_kinds import announcement, kind_signals, newest_first, when

__all__ = ["derive_signals"]

_KIND_TYPE = {
    "usage": "usage.reported",
    "investment": "investment.announced",
    "chip": "chip_delivery.reported",
    "export": "export_rule.changed",
}


def _signal(name: str, value: float, **labels: str) -> Signal:
    return Signal(name, tuple(labels.items()), value)


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
            ((when(p[1])[0], Period.of(p[2]), event_id, p) for event_id, p in live_facts(value)),
            default=None,
        )
        if latest is None:
            return None
        announced = announcement(latest[3])
        usd = rates.to_usd(announced.amount, announced.currency, announced.on)
        # Per year, so that a plan over five years compares with a plan for one.
        return None if usd is None else _Figure(usd / announced.span.years, str(announced.span))
    value = series.get(SeriesId("usage", (entity, metric)))
    dated_usage = newest_first(live_facts(value)) if value is not None else []
    return _Figure(float(dated_usage[0][3][2])) if dated_usage else None


def _trailing(series: Mapping[SeriesId, SeriesValue]) -> list[Signal]:
    dates: dict[str, list[tuple[str, dt.date]]] = defaultdict(list)
    for series_id, value in series.items():
        for _, payload in live_facts(value):
            dates[series_id.subject].append((_KIND_TYPE[series_id.kind], when(payload[1])[1].start))
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
            out.extend(kind_signals(series_id, value, rates))
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
