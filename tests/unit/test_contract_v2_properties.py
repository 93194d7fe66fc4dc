"""The laws of contract v2: conversion at the rate for the fact's date, spans, orders by value.

A USD figure uses exactly the rate known for its fact's date (the newest rate at or
before it in event time), is absent without one, follows retractions of rates, and
does not depend on the order facts and rates arrive in, nor on which partition folded
which copy of a rate. A span's per-year figures add up to its total. An order counts
its reported value, else units times price, never both.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.core.catalogue import Signal
from tracker.core.dates import PartialDate
from tracker.core.decode import validate_event
from tracker.core.events import Event
from tracker.core.fold import FoldBatch, Projection, SeriesValue, tombstones_key
from tracker.core.fx import rates_key
from tracker.core.routing import Router, series_of
from tracker.core.signals import derive_signals

pytestmark = pytest.mark.unit

ROUTER = Router()
SOURCE = {"name": "Federal Reserve Board"}
# Binary fractions and whole thousands: products and sums are exact in any order.
RATES = [0.125, 0.25, 0.140625, 0.0078125]
amounts = st.integers(1, 10**6).map(lambda n: float(n * 1000))

laws = settings(max_examples=200, deadline=None)


@st.composite
def dates(draw: st.DrawFn) -> str:
    """Draw a date known to a year, a month or a day, 2024-2026."""
    year = draw(st.integers(2024, 2026))
    month = draw(st.none() | st.integers(1, 12))
    if month is None:
        return f"{year}"
    day = draw(st.none() | st.integers(1, 28))
    return f"{year}-{month:02d}" if day is None else f"{year}-{month:02d}-{day:02d}"


def rate(event_id: str, occurred_on: str, usd_per_unit: float, currency: str = "CNY") -> Event:
    """Return an exchange-rate fact."""
    return validate_event(
        {
            "type": "fx_rate.reported",
            "id": event_id,
            "currency": currency,
            "usd_per_unit": usd_per_unit,
            "occurred_on": occurred_on,
            "source": SOURCE,
        }
    )


def capex(amount: float, occurred_on: str, currency: str = "CNY", period: int | str = 2026) -> Event:
    """Return an announcement by acme, for ``period``, in ``currency``."""
    return validate_event(
        {
            "type": "investment.announced",
            "id": "capex",
            "entity": "acme",
            "amount": {"value": amount, "unit": currency},
            "period": period,
            "occurred_on": occurred_on,
            "source": SOURCE,
        }
    )


def retraction(target_id: str) -> Event:
    """Return a retraction of ``target_id``."""
    body = {"type": "event.retracted", "id": f"r-{target_id}", "target_id": target_id, "reason": "misread"}
    return validate_event({**body, "occurred_on": "2026", "source": SOURCE})


@st.composite
def rate_sets(draw: st.DrawFn, min_size: int = 0) -> list[Event]:
    """Draw CNY rates with distinct ids, at any dates (two may share one)."""
    drawn = draw(st.lists(st.tuples(dates(), st.sampled_from(RATES)), min_size=min_size, max_size=6))
    return [rate(f"fx-{index}", on, value) for index, (on, value) in enumerate(drawn)]


def rate_for(rates: Sequence[Event], occurred_on: str) -> float | None:
    """Return the rate the contract says converts a figure dated ``occurred_on``: written out plainly."""
    when = PartialDate.parse(occurred_on).sort_key()
    known = [(r.occurred.sort_key(), r.event_id, r.usd_per_unit) for r in rates if r.occurred.sort_key() <= when]
    return max(known)[2] if known else None


def signals(events: Sequence[Event]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Fold ``events`` in order and return every signal by name and labels."""
    state = Projection(ROUTER).replay(events).state
    return {(s.name, s.labels): s.value for s in derive_signals(ROUTER, state)}


USD = ("market_investment_usd", (("entity", "acme"), ("period", "2026")))
NATIVE = ("market_investment", (("entity", "acme"), ("period", "2026"), ("currency", "CNY")))


# --- conversion ----------------------------------------------------------------------------------------


@laws
@given(rate_sets(), dates(), amounts, st.randoms(use_true_random=False))
def test_a_usd_figure_uses_exactly_the_rate_known_for_its_facts_date(
    rates: list[Event], occurred_on: str, amount: float, rng: Any
) -> None:
    events = [capex(amount, occurred_on), *rates]
    rng.shuffle(events)

    found = signals(events)

    expected = rate_for(rates, occurred_on)
    assert found[NATIVE] == amount  # the figure as reported is always there
    if expected is None:
        assert USD not in found  # no rate, no USD figure: never the yuan amount
    else:
        assert found[USD] == amount * expected


@laws
@given(rate_sets(min_size=1), dates(), amounts, st.data())
def test_retracting_a_rate_converts_with_the_rates_that_remain(
    rates: list[Event], occurred_on: str, amount: float, data: st.DataObject
) -> None:
    gone = data.draw(st.sampled_from(rates))
    before = signals([capex(amount, occurred_on), *rates])

    after = signals([retraction(gone.event_id), capex(amount, occurred_on), *rates])

    remaining = [r for r in rates if r is not gone]
    expected = rate_for(remaining, occurred_on)
    assert after.get(USD) == (None if expected is None else amount * expected)
    if rate_for(rates, occurred_on) is not None and before.get(USD) != after.get(USD):
        # It changed because the retracted rate was the one in use.
        assert rate_for(rates, occurred_on) == gone.usd_per_unit


def test_a_rate_arriving_after_the_fact_converts_it_and_one_dated_after_it_does_not() -> None:
    fact = capex(1000.0, "2025-06")

    alone = signals([fact])
    later_rate = signals([fact, rate("fx-july", "2025-07", 0.125)])
    earlier_rate = signals([fact, rate("fx-july", "2025-07", 0.125), rate("fx-may", "2025-05", 0.25)])

    assert USD not in alone and alone[NATIVE] == 1000.0
    assert USD not in later_rate
    assert earlier_rate[USD] == 250.0
    assert earlier_rate[("market_fx_usd_per_unit", (("currency", "CNY"),))] == 0.125  # the newest rate


# --- order independence, also across partitions ---------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """Draw announcements and chip orders in yuan and dollars, rates, and retractions of some of them."""
    facts: list[Event] = []
    for index in range(draw(st.integers(1, 5))):
        currency = draw(st.sampled_from(["CNY", "USD", "JPY"]))
        entity = draw(st.sampled_from(["acme", "globex", "initech"]))
        body: dict[str, Any] = {"id": f"fact-{index}", "occurred_on": draw(dates()), "source": SOURCE}
        if draw(st.booleans()):
            span = draw(st.sampled_from([2025, 2026, "2025-2027", "2022-2024", "2026-2030"]))
            money = {"value": draw(amounts), "unit": currency}
            facts.append(
                validate_event(
                    {**body, "type": "investment.announced", "entity": entity, "amount": money, "period": span}
                )
            )
        else:
            value = {"value": draw(amounts), "unit": currency}
            facts.append(validate_event({**body, **_chip(entity, value)}))
    rates = draw(rate_sets())
    rates += [rate(f"fx-jpy-{n}", draw(dates()), 0.0078125, "JPY") for n in range(draw(st.integers(0, 2)))]
    events = [*facts, *rates]
    targets = draw(st.lists(st.sampled_from([event.event_id for event in events]), max_size=3, unique=True))
    return events + [retraction(target) for target in targets]


def _chip(buyer: str, value: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"type": "chip_delivery.reported", "entity": buyer, "vendor": "nvidia", "product": "nvidia_h20"}
    return {**body, "stage": "ordered", **({"order_value": value} if value is not None else {})}


def observed(state: dict[str, SeriesValue]) -> list[Signal]:
    """Return the derived signals in a canonical order."""
    return sorted(derive_signals(ROUTER, state), key=lambda s: (s.name, s.labels, s.value))


def fold_on_partitions(events: Sequence[Event], partitions: int) -> dict[str, SeriesValue]:
    """Fold like the workers do: a fact on its home partition, a rate or a retraction on every one."""
    states: list[dict[str, SeriesValue]] = [{} for _ in range(partitions)]
    for event in events:
        series = series_of(event)
        homes = range(partitions) if series is None else [zlib.crc32(series.subject.encode()) % partitions]
        for partition in homes:
            state = states[partition]

            def locate(event_id: str, state: dict[str, SeriesValue] = state) -> list[str]:
                return [key for key, value in state.items() if event_id in value["facts"]]

            batch = FoldBatch(
                ROUTER,
                state.get,
                locate,
                lambda event_id, p=partition: tombstones_key(p, event_id),
                lambda event_id, p=partition: rates_key(p, event_id),
            )
            batch.apply(event, event.event_id)
            state.update(batch.changed)
    return {key: value for state in states for key, value in state.items()}


@laws
@given(histories(), st.data())
def test_conversions_depend_on_the_set_of_facts_and_rates_not_on_order_or_partition(
    events: list[Event], data: st.DataObject
) -> None:
    arrival = data.draw(st.permutations(events))

    reference = Projection(ROUTER).replay(events).state
    shuffled = Projection(ROUTER).replay(arrival).state
    partitioned = fold_on_partitions(arrival, data.draw(st.integers(1, 4)))

    assert observed(shuffled) == observed(reference)
    assert observed(partitioned) == observed(reference)


@laws
@given(histories())
def test_folding_facts_and_rates_twice_changes_nothing(events: list[Event]) -> None:
    once = Projection(ROUTER).replay(events).state

    twice = Projection(ROUTER).replay([*events, *events]).state

    assert twice == once


# --- spans -------------------------------------------------------------------------------------------------


@laws
@given(st.integers(1990, 2190), st.integers(1, 11), amounts, st.sampled_from(["USD", "CNY"]))
def test_the_per_year_figures_of_a_span_add_up_to_its_total(
    first: int, years: int, amount: float, currency: str
) -> None:
    period: int | str = first if years == 1 else f"{first}-{first + years - 1}"
    label = str(period)

    found = signals([capex(amount, "2025", currency, period), rate("fx", "2024", 0.140625)])

    total = found[("market_investment_usd", (("entity", "acme"), ("period", label)))]
    per_year = found[("market_investment_usd_per_year", (("entity", "acme"), ("period", label)))]
    assert math.isclose(math.fsum([per_year] * years), total, rel_tol=1e-12)
    assert total == amount * (1.0 if currency == "USD" else 0.140625)


def test_growth_compares_a_span_with_the_span_of_equal_length_before_it() -> None:
    def plan(event_id: str, period: int | str, amount: float) -> Event:
        data = {"type": "investment.announced", "id": event_id, "entity": "acme", "period": period}
        money = {"value": amount, "unit": "USD"}
        return validate_event({**data, "amount": money, "occurred_on": "2025", "source": SOURCE})

    found = signals([plan("a", "2022-2024", 100e9), plan("b", "2025-2027", 150e9), plan("c", 2024, 10e9)])
    growth = {labels: value for (name, labels), value in found.items() if name == "market_investment_growth_ratio"}

    # 2025-2027 against 2022-2024, not against the single year 2024.
    assert growth == {(("entity", "acme"), ("period", "2025-2027")): 0.5}


# --- orders by value ------------------------------------------------------------------------------------


@st.composite
def orders(draw: st.DrawFn) -> dict[str, Any]:
    """Draw one chip report: units (maybe priced), an order value, or both; money in dollars or yuan."""
    shape = draw(st.sampled_from(["units", "value", "both"]))
    body: dict[str, Any] = {"stage": draw(st.sampled_from(["ordered", "ordered", "delivered"]))}
    if shape in ("units", "both"):
        body["units"] = {"value": float(draw(st.integers(1, 1000))), "unit": "units"}
        if draw(st.booleans()):
            body["unit_price"] = {"value": draw(amounts), "unit": draw(st.sampled_from(["USD", "CNY"]))}
    if shape in ("value", "both"):
        body["order_value"] = {"value": draw(amounts), "unit": draw(st.sampled_from(["USD", "CNY"]))}
    return body


def expected_value(body: dict[str, Any]) -> tuple[float, str] | None:
    """Return what one report adds to the order value: its value, else units times price, else nothing."""
    if body["stage"] != "ordered":
        return None
    if "order_value" in body:
        return body["order_value"]["value"], body["order_value"]["unit"]
    if "units" in body and "unit_price" in body:
        return body["units"]["value"] * body["unit_price"]["value"], body["unit_price"]["unit"]
    return None


@laws
@given(st.lists(orders(), min_size=1, max_size=6), st.booleans())
def test_an_order_counts_its_value_as_reported_else_units_times_price_never_both(
    bodies: list[dict[str, Any]], with_rate: bool
) -> None:
    events = [
        validate_event({**_chip("acme"), **body, "id": f"o-{n}", "occurred_on": "2025-06", "source": SOURCE})
        for n, body in enumerate(bodies)
    ]
    rates = [rate("fx", "2025-01", 0.125)] if with_rate else []

    found = signals([*events, *rates])

    labels = (("buyer", "acme"), ("vendor", "nvidia"), ("product", "nvidia_h20"))
    figures = [figure for figure in map(expected_value, bodies) if figure is not None]
    native: dict[str, list[float]] = {}
    for value, currency in figures:
        native.setdefault(currency, []).append(value)
    for currency, values in native.items():
        assert found[("market_chip_order_value", (*labels, ("currency", currency)))] == math.fsum(values)
    in_usd = [value * (1.0 if currency == "USD" else 0.125) for value, currency in figures]
    convertible = with_rate or all(currency == "USD" for _, currency in figures)
    if figures and convertible:
        assert math.isclose(found[("market_chip_order_value_usd", labels)], math.fsum(in_usd), rel_tol=1e-12)
    else:
        assert ("market_chip_order_value_usd", labels) not in found
    units = [b["units"]["value"] for b in bodies if "units" in b and b["stage"] == "ordered"]
    assert found.get(("market_chip_units", (*labels, ("stage", "ordered")))) == (math.fsum(units) if units else None)
