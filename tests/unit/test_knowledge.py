"""Knowledge time: "as of" a date, the tracker answers from the facts and retractions known then."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.core.catalogue import Signal
from tracker.core.decode import validate_event
from tracker.core.events import Event
from tracker.core.fold import FoldBatch, Projection, SeriesValue, tombstones_key
from tracker.core.knowledge import known_on, known_state, parse_as_of
from tracker.core.routing import Router, parse_peers
from tracker.core.signals import derive_signals

pytestmark = pytest.mark.unit

EventFactory = Callable[..., Event]
ROUTER = Router(parse_peers("bytedance:google:tokens_per_day"))
TOKENS = "bytedance/usage:bytedance:tokens_per_day"


def usage(signals: list[Signal], entity: str = "bytedance", metric: str = "tokens_per_day") -> float | None:
    """Return market_usage of one series, or None when absent."""
    found = [
        s.value
        for s in signals
        if s.name == "market_usage" and s.label("entity") == entity and s.label("metric") == metric
    ]
    return found[0] if found else None


def as_of(events: Sequence[Event], day: str | None, router: Router = ROUTER) -> list[Signal]:
    """Fold every event, then derive the signals as known on ``day``."""
    state = Projection(router).replay(events).state
    return derive_signals(router, known_state(state, day))


# --- knowledge dates ------------------------------------------------------------------------------------


def test_a_fact_is_known_from_its_report_day_else_from_the_first_day_of_its_period(
    event_factory: EventFactory,
) -> None:
    reported = event_factory("usage.reported", occurred_on="2025-10", reported_on="2025-12-20")
    monthly = event_factory("usage.reported", occurred_on="2025-10")
    yearly = event_factory("usage.reported", occurred_on="2025")

    assert [known_on(reported), known_on(monthly), known_on(yearly)] == ["2025-12-20", "2025-10-01", "2025-01-01"]


def test_an_as_of_month_or_year_means_everything_known_by_its_last_day() -> None:
    assert [parse_as_of("2025-11-15"), parse_as_of("2025-11"), parse_as_of("2024")] == [
        "2025-11-15",
        "2025-11-30",
        "2024-12-31",
    ]


@pytest.mark.parametrize("text", ["2025-13", "yesterday", "2025-02-30", "25-11-01"])
def test_a_bad_as_of_says_which_forms_are_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="use YYYY, YYYY-MM or YYYY-MM-DD"):
        parse_as_of(text)


# --- the seed's tokens per day --------------------------------------------------------------------------


def test_as_of_mid_november_the_october_figure_is_the_latest(seed_events: tuple[Event, ...]) -> None:
    assert usage(as_of(seed_events, "2025-11-15")) == 3.0e13
    assert usage(as_of(seed_events, "2025-12-01")) == 5.0e13
    assert usage(as_of(seed_events, "2025-09-30")) is None


def test_a_late_report_counts_from_its_report_day_not_from_the_month_it_describes(
    event_factory: EventFactory,
) -> None:
    october = event_factory(
        "usage.reported", id="oct", occurred_on="2025-10", reported_on="2025-12-20", value={"value": 3e13, "unit": "t"}
    )

    assert usage(as_of([october], "2025-12-19")) is None
    assert usage(as_of([october], "2025-12-20")) == 3e13


def test_a_retraction_counts_from_its_own_knowledge_time(event_factory: EventFactory) -> None:
    october = event_factory("usage.reported", id="oct", occurred_on="2025-10", value={"value": 3e13, "unit": "t"})
    december = event_factory("usage.reported", id="dec", occurred_on="2025-12", value={"value": 5e13, "unit": "t"})
    retraction = event_factory(
        "event.retracted", id="r", target_id="dec", occurred_on="2026-01", reported_on="2026-01-10"
    )
    events = [october, december, retraction]

    assert usage(as_of(events, "2026-01-09")) == 5e13
    assert usage(as_of(events, "2026-01-10")) == 3e13
    assert usage(as_of(events, None)) == 3e13


def test_of_two_retractions_the_one_known_first_counts_whatever_the_arrival_order(
    event_factory: EventFactory,
) -> None:
    december = event_factory("usage.reported", id="dec", occurred_on="2025-12")
    late = event_factory("event.retracted", id="late", target_id="dec", occurred_on="2026-03")
    early = event_factory("event.retracted", id="early", target_id="dec", occurred_on="2026-01")

    one = Projection(ROUTER).replay([december, late, early]).state
    two = Projection(ROUTER).replay([early, december, late]).state

    assert one[TOKENS]["retracted"] == two[TOKENS]["retracted"] == {"dec": "early"}
    assert usage(derive_signals(ROUTER, known_state(one, "2026-02-01"))) is None


def test_a_redelivered_fact_keeps_the_earliest_report_day(event_factory: EventFactory) -> None:
    late = event_factory("usage.reported", id="dec", occurred_on="2025-12", reported_on="2026-02-01")
    early = event_factory("usage.reported", id="dec", occurred_on="2025-12", reported_on="2025-12-15")

    state = Projection(ROUTER).replay([late, early]).state

    assert state[TOKENS]["known"]["dec"] == ["2025-12-15", None]


def test_the_fold_records_each_fact_s_offset_and_its_report_day_when_it_has_one(event_factory: EventFactory) -> None:
    plain = event_factory("usage.reported", id="dec", occurred_on="2025-12")
    late = event_factory("usage.reported", id="oct", occurred_on="2025-10", reported_on="2025-12-20")
    store: dict[str, SeriesValue] = {}
    batch = FoldBatch(ROUTER, store.get, lambda _: (), lambda event_id: tombstones_key(3, event_id))

    batch.apply(plain, "dec", position=(3, 41))
    batch.apply(late, "oct", position=(3, 42))

    assert batch.changed[TOKENS]["known"] == {"dec": 41, "oct": ["2025-12-20", 42]}


def test_a_value_written_before_knowledge_was_recorded_counts_from_occurred_on() -> None:
    legacy = {TOKENS: {"facts": {"dec": ["d", "2025-12", 5e13]}, "retracted": {}}}

    assert usage(derive_signals(ROUTER, known_state(legacy, "2025-11-30"))) is None
    assert usage(derive_signals(ROUTER, known_state(legacy, "2025-12-01"))) == 5e13


# --- the laws -------------------------------------------------------------------------------------------

DAYS = st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2026, 12, 31))


@st.composite
def known_facts(draw: st.DrawFn) -> list[Event]:
    """Draw usage facts with distinct ids, some reported later, and retractions of some of them."""
    events: list[Event] = []
    count = draw(st.integers(1, 8))
    for n in range(count):
        data: dict[str, Any] = {
            "type": "usage.reported",
            "id": f"fact-{n}",
            "entity": draw(st.sampled_from(["bytedance", "google"])),
            "metric": "tokens_per_day",
            "value": {"value": float(draw(st.integers(1, 100))), "unit": "t"},
            "occurred_on": draw(st.sampled_from(["2025", "2025-03", "2025-10", "2025-12", "2025-12-04", "2026-01"])),
            "source": {"name": "Financial Times"},
        }
        if draw(st.booleans()):
            data["reported_on"] = draw(DAYS).isoformat()
        events.append(validate_event(data))
    for n, target in enumerate(draw(st.lists(st.integers(0, count - 1), max_size=3))):
        data = {
            "type": "event.retracted",
            "id": f"retraction-{n}",
            "target_id": f"fact-{target}",
            "reason": "misread",
            "occurred_on": draw(DAYS).isoformat(),
            "source": {"name": "desk"},
        }
        events.append(validate_event(data))
    return draw(st.permutations(events))


def canonical(signals: list[Signal]) -> list[Signal]:
    """Return signals in a canonical order."""
    return sorted(signals, key=lambda s: (s.name, s.labels, s.value))


@settings(max_examples=150, deadline=None)
@given(known_facts(), DAYS)
def test_as_of_at_or_after_every_knowledge_date_is_the_present_answer(events: list[Event], extra: dt.date) -> None:
    latest = max(known_on(event) for event in events)
    day = max(latest, extra.isoformat())

    assert canonical(as_of(events, day)) == canonical(as_of(events, None))


@settings(max_examples=150, deadline=None)
@given(known_facts(), DAYS)
def test_facts_known_later_never_change_an_earlier_answer(events: list[Event], when: dt.date) -> None:
    day = when.isoformat()
    known_then = [event for event in events if known_on(event) <= day]

    assert canonical(as_of(events, day)) == canonical(as_of(known_then, None))
