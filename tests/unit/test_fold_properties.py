"""The laws of the fold: signals are a function of the set of events.

Whatever the arrival order, however often a fact is redelivered, however the
stream is cut into batches, the derived signals are the same; a retraction
is the same as never having published its target.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tracker.core.catalogue import Signal
from tracker.core.decode import validate_event
from tracker.core.events import Event, EventRetracted
from tracker.core.fold import FoldBatch, Projection, SeriesValue, live_facts, tombstones_key
from tracker.core.routing import Router, parse_peers
from tracker.core.signals import derive_signals

pytestmark = pytest.mark.unit

ROUTER = Router(
    parse_peers("bytedance:google:tokens_per_day,doubao:google:mau,bytedance:us_hyperscalers:investment_usd")
)
ENTITIES = ["bytedance", "google", "doubao", "us_hyperscalers"]
ID_POOL = ["shared-a", "shared-b"]

laws = settings(max_examples=150, deadline=None)

# --- generated events ------------------------------------------------------------------------------------


@st.composite
def dates(draw: st.DrawFn) -> str:
    """Draw an event date known to a year, a month or a day."""
    year = draw(st.integers(2024, 2026))
    month = draw(st.none() | st.integers(1, 12))
    if month is None:
        return f"{year}"
    day = draw(st.none() | st.integers(1, 28))
    return f"{year}-{month:02d}" if day is None else f"{year}-{month:02d}-{day:02d}"


# Whole numbers (and the halves of their midpoints) add up exactly in any order.
figures = st.integers(0, 10**6).map(lambda n: float(n * 1000))


@st.composite
def quantities(draw: st.DrawFn, unit: str) -> dict[str, Any]:
    """Draw a point, a range or a single bound, maybe approximate."""
    shape = draw(st.sampled_from(["value", "range", "low", "high"]))
    quantity: dict[str, Any] = {"unit": unit, "approx": draw(st.booleans())}
    if shape == "range":
        low, high = sorted([draw(figures), draw(figures)])
        quantity.update(low=low, high=high)
    else:
        quantity[shape] = draw(figures)
    return quantity


@st.composite
def facts(draw: st.DrawFn, units: Any = None) -> dict[str, Any]:
    """Draw one valid fact of any of the four types, as JSON-ready data."""
    kind = draw(
        st.sampled_from(["usage.reported", "investment.announced", "chip_delivery.reported", "export_rule.changed"])
    )
    data: dict[str, Any] = {
        "type": kind,
        "occurred_on": draw(dates()),
        "source": {"name": draw(st.sampled_from(["Financial Times", "Reuters", "QuestMobile"]))},
        "status": draw(st.sampled_from(["planned", "reported", "confirmed", "rumored"])),
    }
    if draw(st.integers(0, 5)) == 0:
        data["id"] = draw(st.sampled_from(ID_POOL))
    if kind == "usage.reported":
        data.update(
            entity=draw(st.sampled_from(ENTITIES)),
            metric=draw(st.sampled_from(["mau", "tokens_per_day"])),
            value=draw(quantities("users")),
        )
    elif kind == "investment.announced":
        data.update(
            entity=draw(st.sampled_from(ENTITIES)),
            period=draw(st.integers(2024, 2027)),
            amount=draw(quantities("USD")),
        )
    elif kind == "chip_delivery.reported":
        data.update(
            entity=draw(st.sampled_from(ENTITIES)),
            vendor="nvidia",
            product=draw(st.sampled_from(["nvidia_h200", "nvidia_h20"])),
            units=draw(units or quantities("units")),
            stage=draw(st.sampled_from(["ordered", "scheduled", "delivered"])),
        )
        buyer = draw(st.none() | st.sampled_from(["bytedance", "cn_approved_customers"]))
        if buyer is not None:
            data["buyer"] = buyer
        if draw(st.booleans()):
            data["unit_price"] = draw(quantities("USD"))
    else:
        data.update(
            authority="us_government",
            product="nvidia_h200",
            destination=draw(st.sampled_from(["CN", "RU"])),
            direction=draw(st.sampled_from(["loosened", "tightened"])),
        )
        if draw(st.booleans()):
            data["effective_on"] = draw(dates())
    return data


def retraction(target_id: str, reason: str = "misreported") -> Event:
    """Return a retraction of ``target_id``."""
    return validate_event(
        {
            "type": "event.retracted",
            "target_id": target_id,
            "reason": reason,
            "occurred_on": "2026-01",
            "source": {"name": "Financial Times"},
        }
    )


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """Draw facts, rewordings under a reused id, retractions of some facts, of unknown ids, of retractions."""
    found = draw(st.lists(facts(), min_size=1, max_size=12))
    for index in draw(st.lists(st.integers(0, len(found) - 1), max_size=3, unique=True)):
        # The same id published again with other content: only the smaller digest may count.
        found[index] = {**found[index], "id": f"reused-{index}"}
        found.append({**found[index], "source": {"name": "Reuters", "quote": f"version {index}"}})
    events = [validate_event(data) for data in found]
    targets = draw(st.lists(st.sampled_from([event.event_id for event in events]), max_size=4))
    retractions = [retraction(target) for target in targets]
    retractions += [retraction(f"ghost-{n}") for n in draw(st.lists(st.integers(0, 2), max_size=2))]
    if retractions and draw(st.booleans()):
        retractions.append(retraction(draw(st.sampled_from(retractions)).event_id, "retracted by mistake"))
    return events + retractions


@st.composite
def deliveries(draw: st.DrawFn, events: Sequence[Event]) -> list[Event]:
    """Draw an arrival order of ``events`` where any of them may be redelivered."""
    redelivered = draw(st.lists(st.sampled_from(list(events)), max_size=len(events)))
    return draw(st.permutations([*events, *redelivered]))


# --- what is compared ----------------------------------------------------------------------------------


def fold(events: Sequence[Event]) -> Projection:
    """Replay ``events`` into a fresh projection."""
    return Projection(ROUTER).replay(events)


def observed(state: dict[str, SeriesValue]) -> list[Signal]:
    """Return the derived signals in a canonical order."""
    return sorted(derive_signals(ROUTER, state), key=lambda s: (s.name, s.labels, s.value))


def live(state: dict[str, SeriesValue]) -> set[tuple[str, str, str]]:
    """Return every live fact as (table key, id, payload)."""
    return {
        (key, event_id, repr(payload))
        for key, value in state.items()
        if not key.startswith("#")
        for event_id, payload in live_facts(value)
    }


# --- the laws ----------------------------------------------------------------------------------------


@laws
@given(st.data())
def test_signals_depend_on_the_set_of_events_not_on_order_or_redelivery(data: st.DataObject) -> None:
    events = data.draw(histories())
    arrival = data.draw(deliveries(events))

    reference, shuffled = fold(events), fold(arrival)

    assert observed(shuffled.state) == observed(reference.state)
    assert live(shuffled.state) == live(reference.state)


@laws
@given(histories())
def test_replaying_the_log_twice_changes_nothing(events: list[Event]) -> None:
    once = fold(events)

    twice = fold([*events, *events])

    assert twice.state == once.state
    assert observed(twice.state) == observed(once.state)


@laws
@given(st.data())
def test_retracting_a_fact_is_never_having_published_it(data: st.DataObject) -> None:
    events = data.draw(histories())
    contents = {(event.event_id, event) for event in events}
    candidates = [
        event
        for event in events
        if not isinstance(event, EventRetracted)
        and sum(1 for event_id, _ in contents if event_id == event.event_id) == 1
    ]
    if not candidates:
        fallback = validate_event(data.draw(facts()))
        # A fact whose id the history already gave other contents is not a lone fact either.
        assume(all(event.event_id != fallback.event_id for event in events))
        candidates = [fallback]
        events = [*events, *candidates]
    target = data.draw(st.sampled_from(candidates))
    with_retraction = data.draw(st.permutations([*events, retraction(target.event_id)]))
    without_target = [event for event in events if event != target]

    retracted, never = fold(with_retraction), fold(without_target)

    assert observed(retracted.state) == observed(never.state)
    assert live(retracted.state) == live(never.state)


@laws
@given(st.data())
def test_cutting_the_stream_into_batches_changes_nothing(data: st.DataObject) -> None:
    events = data.draw(histories())
    arrival = data.draw(deliveries(events))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(arrival)), max_size=5)))
    store: dict[str, SeriesValue] = {}

    for start, end in zip([0, *cuts], [*cuts, len(arrival)], strict=True):
        batch = FoldBatch(ROUTER, store.get, functools.partial(locate, store), functools.partial(tombstones_key, 0))
        for event in arrival[start:end]:
            batch.apply(event, event.event_id)
        store.update(batch.changed)

    assert observed(store) == observed(fold(events).state)


def locate(store: dict[str, SeriesValue], event_id: str) -> list[str]:
    """Find the series holding a fact the slow way, as the reference does."""
    return [key for key, value in store.items() if not key.startswith("#") and event_id in value["facts"]]


def chip_order(units: float, price: float, n: int) -> Event:
    """Return the n-th priced order of nvidia_h200 by bytedance."""
    return validate_event(
        {
            "type": "chip_delivery.reported",
            "id": f"order-{n}",
            "entity": "bytedance",
            "vendor": "nvidia",
            "product": "nvidia_h200",
            "units": {"value": units, "unit": "units"},
            "unit_price": {"value": price, "unit": "USD"},
            "stage": "ordered",
            "occurred_on": "2025-12",
            "source": {"name": "Financial Times"},
        }
    )


amounts = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)


@laws
@example(orders=[(36233, 10090.29), (15131, 27397.09), (49870, 18924.54)], order=[0, 2, 1])
@given(
    orders=st.lists(st.tuples(amounts, amounts), min_size=2, max_size=5),
    order=st.permutations(range(5)),
)
def test_chip_totals_do_not_depend_on_arrival_order_for_any_figures(
    orders: list[tuple[float, float]], order: list[int]
) -> None:
    # Prices come in cents ("19,999.99 dollars"), so sums of products are not exact in binary.
    events = [chip_order(units, price, n) for n, (units, price) in enumerate(orders)]
    arrival = [events[i] for i in order if i < len(events)]

    assert observed(fold(arrival).state) == observed(fold(events).state)
