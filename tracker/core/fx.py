"""Exchange rates as facts: where they are folded, and the rate a figure is converted at.

A rate is needed by facts of every fold group, so it is folded on every
partition, like a retraction: the publisher writes it once, the worker that
folds it copies it to each partition, and each partition keeps its rates in
a few bucket keys ``#<partition>/fx/<bucket>`` (the bucket is a hash of the
rate's id, so a retraction finds its target without an index). A USD figure
is derived when signals are, from the rates in the state at hand: a rate
published after the fact, or retracted, changes it at the next derivation.

The rate for a figure dated D is the rate of the nearest date at or before D
in event time (``PartialDate.sort_key``: the middle of each period, the more
precise date later on a tie), the greatest id among rates of that date. With
no such rate there is no USD figure.
"""

from __future__ import annotations

import functools
import zlib
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from tracker.core.dates import PartialDate

__all__ = ["RATE_BUCKETS", "Rate", "Rates", "is_rates_key", "rates_key", "rates_keys"]

#: Bucket keys per partition: each stays small (it is rewritten whenever one of its rates changes).
RATE_BUCKETS = 16
_INFIX = "/fx/"


def rates_key(partition: int, event_id: str) -> str:
    """Return the key holding the rate ``event_id`` on ``partition``."""
    return f"#{partition}{_INFIX}{zlib.crc32(event_id.encode()) % RATE_BUCKETS}"


def rates_keys(partition: int) -> list[str]:
    """Return every rates key of ``partition``."""
    return [f"#{partition}{_INFIX}{bucket}" for bucket in range(RATE_BUCKETS)]


def is_rates_key(key: str) -> bool:
    """Return whether a table key holds exchange rates."""
    return key.startswith("#") and _INFIX in key


class Rate(NamedTuple):
    """One exchange rate: US dollars for one unit, the date it is for, and the fact's id."""

    usd_per_unit: float
    on: str
    event_id: str


@functools.lru_cache(maxsize=65536)
def _order(text: str) -> tuple[float, int]:
    return PartialDate.parse(text).sort_key()


class Rates:
    """The live exchange rates of a state, per currency, in event-time order."""

    def __init__(self, rates: Iterable[tuple[str, list[Any]]] = ()) -> None:
        by_currency: dict[str, list[tuple[tuple[float, int], str, Rate]]] = {}
        for event_id, payload in rates:
            _, on, currency, usd_per_unit = payload[:4]
            by_currency.setdefault(currency, []).append((_order(on), event_id, Rate(usd_per_unit, on, event_id)))
        self._orders: dict[str, list[tuple[float, int]]] = {}
        self._rates: dict[str, list[Rate]] = {}
        for currency, entries in by_currency.items():
            entries.sort()
            self._orders[currency] = [order for order, _, _ in entries]
            self._rates[currency] = [rate for _, _, rate in entries]

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Rates:
        """Collect the rates of every rates key in ``state`` (one copy per partition).

        Copies agree once every partition has folded the same records; until then a
        rate counts if some copy holds it and no copy has it retracted.
        """
        return cls(_live(state[key] for key in state if is_rates_key(key)))

    def __bool__(self) -> bool:
        return bool(self._rates)

    def at(self, currency: str, on: str) -> Rate | None:
        """Return the rate a figure in ``currency`` dated ``on`` is converted at, or None."""
        orders = self._orders.get(currency)
        if orders is None:
            return None
        index = bisect_right(orders, _order(on))
        return self._rates[currency][index - 1] if index else None

    def to_usd(self, amount: float, currency: str, on: str) -> float | None:
        """Return ``amount`` in US dollars at the rate for ``on``; None when no rate is known."""
        if currency == "USD":
            return amount
        rate = self.at(currency, on)
        return None if rate is None else amount * rate.usd_per_unit

    def latest(self) -> Iterator[tuple[str, Rate]]:
        """Yield each currency with its newest rate by event time, currencies in order."""
        for currency in sorted(self._rates):
            yield currency, self._rates[currency][-1]


def _live(values: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, list[Any]]]:
    facts: dict[str, list[Any]] = {}
    retracted: set[str] = set()
    for value in values:
        retracted.update(value["retracted"])
        for event_id, payload in value["facts"].items():
            known = facts.get(event_id)
            # Copies of one id keep the content with the smaller digest, as the fold does.
            if known is None or payload[0] < known[0]:
                facts[event_id] = payload
    for event_id, payload in sorted(facts.items()):
        if event_id not in retracted:
            yield event_id, payload
